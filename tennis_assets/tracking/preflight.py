"""Checks that a resource can be used, run before any work: the MLflow tracking/registry store,
a local artifact folder, an Optuna study storage, an output folder.

Each check answers within a few seconds (explicit short timeouts, no retry loops: MLflow's own
clients retry a database for minutes and an HTTP server for longer) and creates nothing on disk.
A problem comes out as ``ResourceError`` (a ValueError) whose message names the parameter, its
value (passwords masked) and the fix.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from tennis_assets.redaction import redact_text, redact_url

# Seconds a server or database gets to answer a check.
TIMEOUT_S = 5.0
SQLITE_HEADER = b"SQLite format 3\x00"
TRACKING_FORMS = ("sqlite:///<path>.db", "http(s)://<mlflow server>",
                  "postgresql://<user>@<host>/<db>", "mysql://<user>@<host>/<db>")
_SQL_SERVERS = ("postgresql", "postgres", "mysql")


class ResourceError(ValueError):
    """A resource that cannot be used; the message names it, its value and the fix."""


def _scheme(url: str) -> str:
    # "postgresql+psycopg2" -> "postgresql": the dialect decides, the driver does not.
    return urlsplit(url).scheme.split("+", 1)[0].lower()


def _shown(url: str) -> str:
    """``url`` as a message may quote it: redacted where it carries credentials or a query
    (redact_url would also rewrite ``sqlite:///x`` as ``sqlite:/x``)."""
    return redact_url(url) if "@" in url or "?" in url else url


def _sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL (relative or absolute, query dropped); None for an
    in-memory database."""
    rest = url.split("://", 1)[1]
    path = unquote(rest.split("?", 1)[0])
    path = path.removeprefix("/")  # sqlite:///rel.db -> rel.db, sqlite:////abs.db -> /abs.db
    if path in ("", ":memory:"):
        return None
    return Path(path).expanduser()


def _sqlite_form(path: Path) -> str:
    path = path.expanduser().absolute()
    if path.suffix.lower() not in (".db", ".sqlite", ".sqlite3"):
        path = path / "mlflow.db"
    return f"sqlite:///{path}"


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _probe_folder(folder: Path, name: str, value: str, fix: str) -> None:
    """``folder`` exists or can be created, and a file can be written there (a real write:
    permission bits do not stop root, a read-only mount does)."""
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        what = "is a file, not a folder" if existing.exists() else "does not exist"
        tail = "" if existing == folder.absolute() else f", so {folder} cannot be created"
        raise ResourceError(f"{name}={value!r}: {existing} {what}{tail}; {fix}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".preflight-", dir=existing)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        where = (f"{folder}" if existing == folder.absolute()
                 else f"{folder} cannot be created under {existing}")
        raise ResourceError(f"{name}={value!r}: {where} is not writable ({reason}); "
                            f"{fix}") from None
    os.close(fd)
    os.unlink(probe)


def check_output_folder(path: str | os.PathLike, name: str = "output folder") -> Path:
    """``path`` is a folder that exists or can be created, and is writable."""
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ResourceError(f"{name}={str(path)!r}: {folder} is a file, not a folder; choose a "
                            "folder (or a path that does not exist yet)")
    _probe_folder(folder, name, str(path), "choose a folder you can write to")
    return folder


def _check_sqlite(url: str, name: str, fix: str) -> None:
    path = _sqlite_path(url)
    if path is None:
        return
    shown = _shown(url)
    if path.exists():
        if not path.is_file():
            raise ResourceError(f"{name}={shown!r}: {path} is not a file; {fix}")
        try:
            # Opened for writing (nothing is written): a read-only database fails here, not
            # after the work it was to record.
            with open(path, "r+b") as f:
                header = f.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise ResourceError(f"{name}={shown!r}: cannot write {path} ({exc.strerror}); "
                                f"{fix}") from None
        # An empty file is an empty database to SQLite.
        if header and header != SQLITE_HEADER:
            raise ResourceError(f"{name}={shown!r}: {path} is not a SQLite database; point it "
                                "at a new file (it is created) or at an existing database")
        try:
            db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True,
                                 timeout=TIMEOUT_S)
            try:
                db.execute("PRAGMA schema_version").fetchone()
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise ResourceError(f"{name}={shown!r}: cannot open the SQLite database {path} "
                                f"({exc}); {fix}") from None
    # SQLite writes its journal beside the database, so the folder must be writable too.
    _probe_folder(path.parent, name, shown, fix)


def _check_sql_server(url: str, name: str, fix: str, timeout_s: float) -> None:
    import sqlalchemy

    from tennis_assets.settings import database_url

    shown = _shown(url)
    try:
        engine = sqlalchemy.create_engine(database_url(url), poolclass=sqlalchemy.pool.NullPool,
                                          connect_args={"connect_timeout": max(1, int(timeout_s))})
    except ImportError as exc:
        raise ResourceError(f"{name}={shown!r}: its database driver is not installed ({exc}); "
                            "install it, or name an installed one in the URL (e.g. "
                            "mysql+pymysql://, postgresql+psycopg2://)") from None
    except sqlalchemy.exc.ArgumentError as exc:  # malformed URL, unknown dialect
        raise ResourceError(f"{name}={shown!r}: {redact_text(str(exc), url)}; {fix}") from None
    try:
        with engine.connect():
            pass
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as exc:  # DBAPI errors come wrapped
        # Driver messages can quote the URL, password included.
        detail = " ".join(redact_text(str(getattr(exc, "orig", None) or exc), url).split())
        raise ResourceError(f"{name}={shown!r}: the database refused the connection or did not "
                            f"answer within {timeout_s:g} s ({detail}); {fix}") from None
    finally:
        engine.dispose()


def _check_http(uri: str, name: str, timeout_s: float) -> None:
    shown = _shown(uri)
    parts = urlsplit(uri)
    # Credentials in the URL become a basic-auth header, as MLflow's client sends them.
    host = parts.netloc.rsplit("@", 1)[-1]
    url = urlunsplit((parts.scheme, host, parts.path.rstrip("/") + "/health", "", ""))
    request = urllib.request.Request(url, method="GET")
    if parts.username is not None:
        token = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        request.add_header("Authorization",
                           "Basic " + base64.b64encode(token.encode()).decode())
    fix = "start the MLflow server (mlflow server ...) or correct the URL"
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ResourceError(f"{name}={shown!r}: the MLflow server did not answer GET "
                            f"{redact_url(url)} within {timeout_s:g} s "
                            f"({redact_text(str(reason), uri)}); {fix}") from None
    if status in (401, 403):
        raise ResourceError(f"{name}={shown!r}: the MLflow server refused the credentials "
                            f"(HTTP {status}); set its user and password")
    if not 200 <= status < 300:
        raise ResourceError(f"{name}={shown!r}: GET {redact_url(url)} answered HTTP {status}, "
                            f"not an MLflow server's health check; {fix}")


def check_tracking_uri(uri: str, name: str = "tracking URI",
                       timeout_s: float = TIMEOUT_S) -> str:
    """``uri`` is an MLflow tracking and model-registry store that answers; returns it."""
    if not uri or not uri.strip():
        raise ResourceError(f"{name} is empty; use one of {', '.join(TRACKING_FORMS)}")
    scheme = _scheme(uri)
    if scheme in ("", "file") and not uri.lower().startswith("databricks"):
        path = Path(unquote(urlsplit(uri).path)) if scheme == "file" else Path(uri)
        raise ResourceError(
            f"{name}={_shown(uri)!r}: a folder (MLflow's file store) cannot hold the model "
            f"registry, which needs a database-backed store; use {_sqlite_form(path)!r} for "
            "the same place")
    if scheme == "sqlite":
        _check_sqlite(uri, name, "point it at a folder you can write to")
    elif scheme in ("http", "https"):
        _check_http(uri, name, timeout_s)
    elif scheme in _SQL_SERVERS:
        _check_sql_server(uri, name, "check the host, port, database name and credentials",
                          timeout_s)
    else:
        raise ResourceError(f"{name}={_shown(uri)!r}: scheme {scheme or uri!r} is not "
                            f"supported; use one of {', '.join(TRACKING_FORMS)}")
    return uri


def check_registry_exists(uri: str, name: str = "tracking URI") -> None:
    """A SQLite registry that a reader (the policy server) needs must already exist: MLflow
    would create an empty one at a mistyped path and the reader would wait on it forever."""
    if _scheme(uri) != "sqlite":
        return  # a server or SQL database: the lookups that follow say what is missing
    path = _sqlite_path(uri)
    if path is not None and not (path.is_file() and path.stat().st_size > 0):
        raise ResourceError(f"{name}={_shown(uri)!r}: no registry at {path.absolute()} "
                            f"({'empty file' if path.is_file() else 'no such file'}); point it "
                            "at the database the pipeline registers models in (e.g. "
                            "sqlite:///$TENNIS_ASSETS_HOME/mlflow/mlflow.db)")


def check_artifact_root(uri: str | None, name: str = "artifact root") -> None:
    """A local artifact folder (``file://`` URI or path) exists or can be created and is
    writable; remote locations (s3://, mlflow-artifacts:, ...) are the server's to check."""
    if not uri:
        return
    scheme = urlsplit(uri).scheme.lower()
    if scheme == "file":
        check_output_folder(unquote(urlsplit(uri).path), name)
    elif scheme == "":
        check_output_folder(uri, name)


def _check_redis(url: str, name: str, timeout_s: float) -> None:
    import redis

    shown = _shown(url)
    client = None
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s,
                                      socket_timeout=timeout_s)
        client.ping()
    except (redis.RedisError, ValueError, OSError) as exc:
        # A server's answer to a bad AUTH can quote nothing secret, a URL error can.
        detail = " ".join(redact_text(str(exc), url).split())
        raise ResourceError(f"{name}={shown!r}: the Redis server refused the connection or did "
                            f"not answer within {timeout_s:g} s ({detail}); check the host, "
                            "port, database number and password") from None
    finally:
        if client is not None:
            client.close()


def check_optuna_storage(url: str | None, name: str = "Optuna storage",
                         timeout_s: float = TIMEOUT_S) -> None:
    """An Optuna storage as ``tennis_assets.tuning.make_storage`` opens it: an SQL database
    answers, a journal file's folder is writable (and the file, where it exists)."""
    if not url or url == "memory":
        return
    from tennis_assets.tuning import is_redis

    if is_redis(url):
        _check_redis(url, name, timeout_s)
        return
    if "://" in url and not url.startswith("journal:"):
        scheme = _scheme(url)
        if scheme == "sqlite":
            _check_sqlite(url, name, "point it at a folder you can write to")
        elif scheme in _SQL_SERVERS:
            _check_sql_server(url, name, "check the host, port, database name and credentials",
                              timeout_s)
        else:
            raise ResourceError(f"{name}={_shown(url)!r}: scheme {scheme!r} is not a "
                                "database Optuna can use; use sqlite:///<path>.db, "
                                "postgresql://..., mysql://..., redis://... or journal:<path>")
        return
    path = Path(url.removeprefix("journal:")).expanduser()
    if path.exists():
        if not path.is_file():
            raise ResourceError(f"{name}={url!r}: {path} is not a file; name a journal file")
        try:
            # Opening for append writes nothing, and fails on a read-only file system.
            with open(path, "ab"):
                pass
        except OSError as exc:
            raise ResourceError(f"{name}={url!r}: cannot write the journal {path} "
                                f"({exc.strerror}); choose a file you can write to") from None
    _probe_folder(path.parent, name, url, "choose a journal file in a folder you can write to")
