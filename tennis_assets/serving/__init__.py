"""The policy server: the registry's champion answering action requests over HTTP, with
Prometheus metrics. No Dagster here; ``tennis-assets serve`` starts it.

- ``model_source``: which model is served, and reloading it when the registry's alias moves.
- ``inputs``: request bodies (the server's own and MLflow's scoring protocol) -> arrays.
- ``app``: the HTTP endpoints (Starlette).
- ``protocol``: uvicorn's HTTP protocol with a deadline for receiving each request.
- ``server``: the application on uvicorn, its limits, start, stop and drain.
- ``workers``: ``serve --workers N``: uvicorn's supervisor over N worker processes, with
  prometheus-client's multiprocess metrics.
- ``metrics``: the Prometheus metrics of the server and its process.
- ``monitoring``: the latest drift-monitoring result (a JSON file) as Prometheus gauges.
"""

from .model_source import ChampionSource, LoadedModel
from .server import PolicyServer, ServerConfig

__all__ = ["ChampionSource", "LoadedModel", "PolicyServer", "ServerConfig"]
