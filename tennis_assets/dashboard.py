"""optuna-dashboard on the project's study storage, without the compose stack: the `tennis-assets
dashboard` command (extra ``dashboard``).

The storage is opened here, from the same URL the tuning runs use ($TENNIS_ASSETS_OPTUNA_STORAGE,
else the data directory's journal file), and handed to optuna-dashboard's ``run_server``: a
password in the URL never appears on a command line, and a journal file, an RDB URL and a Redis
journal all work alike. No Dagster here.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path


def check_storage(url: str) -> None:
    """Before serving: the dashboard is installed and a journal file exists (an RDB or Redis
    server is reached when the storage opens)."""
    if find_spec("optuna_dashboard") is None:
        raise ValueError("the dashboard needs optuna-dashboard: "
                         "pip install 'tennis-assets[dashboard]'")
    if url == "memory":
        raise ValueError("storage 'memory' holds no study another process can show")
    if url.startswith("journal:") or "://" not in url:
        path = Path(url.removeprefix("journal:")).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no study journal at {path} yet: run the tune job (or the "
                                    "main command) first, or pass --storage")


def serve(url: str, host: str, port: int) -> None:
    """Serve the studies at ``url`` on http://host:port until interrupted."""
    check_storage(url)
    if not 0 <= port <= 65535:
        raise ValueError(f"port={port}: expected a port in [0, 65535]")
    from optuna_dashboard import run_server

    from tennis_assets.tuning import make_storage, storage_for_cli

    # No heartbeat: the dashboard reads trials, it runs none.
    storage = make_storage(url, heartbeat_interval=None)
    print(f"optuna-dashboard on {storage_for_cli(url)}: http://{host}:{port}/", flush=True)
    run_server(storage, host=host, port=port)
