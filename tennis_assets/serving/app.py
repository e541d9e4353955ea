"""The policy server's HTTP API, a Starlette application.

Shapes are the served model's: A agents, O observation and U action values per agent (Tennis:
A=2, O=24, U=2; MPE simple_spread with 3 agents: A=3, O=18, U=5), read from the model when it
loads; a request of another shape gets a 400 naming the one expected.

    POST /act          {"observations": [A][O]} or [N][A][O] floats
                       -> {"actions": [A][U] or [N][A][U], "model_version": "3"}
    POST /invocations  MLflow's scoring protocol: {"inputs": [N][A][O]} or {"instances": ...}
                       -> {"predictions": [N][A][U]}, as `mlflow models serve` answers
    GET  /ping         MLflow's (and SageMaker's) health check: 200 once a model is loaded
    GET  /health       the same as /ping, as `mlflow models serve` answers it
    GET  /version      the MLflow version, as `mlflow models serve` answers it (plain text)
    GET  /healthz      200 while the process runs: {"status": "ok", "pid": <worker pid>}
    GET  /readyz       200 once a model is loaded, else 503
    GET  /metrics      Prometheus exposition (prometheus-client's ASGI app)

Every rejected request gets a 4xx status and a JSON message (``{"error": ...}``; on
/invocations MLflow's ``{"error_code": ..., "message": ...}``); the server keeps serving. Each
answered request is one JSON line on stderr (``access_log``).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import time
from dataclasses import dataclass

from prometheus_client import make_asgi_app
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from .access_log import AccessLog
from .inputs import BadRequest, parse_invocations, parse_observations
from .metrics import ServingMetrics
from .model_source import ChampionSource

log = logging.getLogger(__name__)

# Bodies over the limit but under this many times it are read and dropped before the 413, so
# the client reads the 413 instead of a reset connection (the kernel resets a socket closed
# with unread data); larger ones are answered at once and the connection closed.
_DRAIN_FACTOR = 8
_ROUTES = {"/act": ("act", "POST"), "/invocations": ("invocations", "POST"),
           "/ping": ("ping", "GET"), "/health": ("ping", "GET"), "/version": ("version", "GET"),
           "/healthz": ("healthz", "GET"), "/readyz": ("readyz", "GET"),
           "/metrics": ("metrics", "GET")}


# Read from the installed distribution: importing mlflow for it would cost seconds.
_MLFLOW_VERSION = importlib.metadata.version("mlflow")


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20
    max_batch: int = 1024


def _json(status: int, doc: dict, close: bool = False, headers: dict | None = None) -> Response:
    headers = dict(headers or {})
    if close:
        headers["Connection"] = "close"  # uvicorn closes the connection after this response
    return Response(json.dumps(doc), status, headers, media_type="application/json")


class PolicyApp:
    """The endpoints, bound to a model source, its metrics and the request limits."""

    def __init__(self, source: ChampionSource, metrics: ServingMetrics, limits: Limits,
                 access: AccessLog | None) -> None:
        self.source, self.metrics, self.limits, self.access = source, metrics, limits, access
        # Which process answered: with several workers (``workers``) each has its own model
        # load, limits and log lines, and a user chasing one needs to know which.
        self.pid = os.getpid()

    def _done(self, request: Request, endpoint: str, started: float, status: int, outcome: str,
              response: Response, batch: int | None = None) -> Response:
        # Counted before the answer leaves: a client that got its response and then reads
        # /metrics must find it counted.
        if outcome != "ok" or endpoint not in ("act", "invocations"):
            self.metrics.request(endpoint, outcome, status, time.perf_counter() - started)
        if self.access is not None:
            # From the ASGI scope: Starlette's request.url builds a URL object per call.
            scope = request.scope
            model = self.source.current
            client = scope.get("client")
            self.access.write({
                "time": round(time.time(), 6),
                "client": f"{client[0]}:{client[1]}" if client else None,
                "method": scope["method"], "path": scope["path"], "status": status,
                "outcome": outcome, "duration_ms": round((time.perf_counter() - started) * 1e3, 3),
                "batch": batch, "model_version": model.version if model else None,
                "pid": self.pid})
        return response

    def _reject(self, request: Request, endpoint: str, started: float, exc: BadRequest,
                mlflow: bool = False) -> Response:
        doc = ({"error_code": "BAD_REQUEST" if exc.status < 500 else "INTERNAL_ERROR",
                "message": exc.message} if mlflow else {"error": exc.message})
        return self._done(request, endpoint, started, exc.status, exc.outcome,
                          _json(exc.status, doc, close=exc.close))

    async def _body(self, request: Request) -> bytes:
        limit = self.limits.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None and int(length) > limit:  # llhttp has checked it is a number
            message = f"body of {length} bytes; the limit is {limit}"
            if int(length) > _DRAIN_FACTOR * limit:
                raise BadRequest(413, "too_large", message, close=True)
            async for _ in request.stream():
                pass
            raise BadRequest(413, "too_large", message)
        chunks, size = [], 0
        async for chunk in request.stream():  # a chunked body has no length to check first
            size += len(chunk)
            if size > limit:
                raise BadRequest(413, "too_large", f"body over the limit of {limit} bytes",
                                 close=True)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _predict(self, request: Request, endpoint: str):
        """(response, batch) of an inference endpoint, the inference timed and counted."""
        started = time.perf_counter()
        mlflow = endpoint == "invocations"
        try:
            if mlflow:
                ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
                if ctype != "application/json":
                    raise BadRequest(415, "unsupported_media_type",
                                     f"content type {ctype or 'missing'!r}; this model "
                                     "takes application/json (inputs or instances)")
            body = await self._body(request)
            model = self.source.current
            if model is None:
                raise BadRequest(503, "not_ready", "no model loaded yet")
            # Validated against the model that answers it: after a swap to another
            # environment's model the new shape applies (a request never meets a mix).
            if mlflow:
                obs = parse_invocations(body, self.limits.max_batch, model.obs_shape)
                single = False
            else:
                obs, single = parse_observations(body, self.limits.max_batch, model.obs_shape)
        except BadRequest as exc:
            return self._reject(request, endpoint, started, exc, mlflow)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody to answer; uvicorn drops it
        t0 = time.perf_counter()
        actions = model.act(obs)
        inference = time.perf_counter() - t0
        if mlflow:
            doc = {"predictions": actions.tolist()}
        else:
            doc = {"actions": (actions[0] if single else actions).tolist(),
                   "model_version": model.version}
        response = _json(200, doc)
        self.metrics.act_ok(time.perf_counter() - started, inference, actions, endpoint)
        return self._done(request, endpoint, started, 200, "ok", response, obs.shape[0])

    async def act(self, request: Request) -> Response:
        return await self._predict(request, "act")

    async def invocations(self, request: Request) -> Response:
        return await self._predict(request, "invocations")

    async def ping(self, request: Request) -> Response:
        started = time.perf_counter()
        ok = self.source.current is not None
        # MLflow's scoring server answers a newline; SageMaker only reads the status.
        return self._done(request, "ping", started, 200 if ok else 503,
                          "ok" if ok else "not_ready",
                          Response("\n", 200 if ok else 503, media_type="application/json"))

    async def version(self, request: Request) -> Response:
        # MLflow's scoring server answers its own version; clients compare it with theirs.
        return self._done(request, "version", time.perf_counter(), 200, "ok",
                          Response(_MLFLOW_VERSION, 200, media_type="application/json"))

    async def healthz(self, request: Request) -> Response:
        return self._done(request, "healthz", time.perf_counter(), 200, "ok",
                          _json(200, {"status": "ok", "pid": self.pid}))

    async def readyz(self, request: Request) -> Response:
        started = time.perf_counter()
        model = self.source.current
        if model is None:
            return self._reject(request, "readyz", started,
                                BadRequest(503, "not_ready", "no model loaded yet"))
        return self._done(request, "readyz", started, 200, "ok", _json(
            200, {"status": "ready", "model": model.name, "version": model.version,
                  "alias": model.alias, "implementation": model.implementation}))

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """Starlette's own 404 and 405, in JSON and counted like every other rejection."""
        if not isinstance(exc, HTTPException):  # registered for HTTPException only
            return await self.server_error(request, exc)
        started = time.perf_counter()
        path = request.url.path
        if exc.status_code == 404:
            return self._reject(request, "other", started, BadRequest(
                404, "not_found", f"no endpoint {path!r}; try POST /act, POST /invocations, "
                "GET /healthz, /readyz, /ping, /health, /version or /metrics"))
        if exc.status_code == 405:
            endpoint, method = _ROUTES.get(path, ("other", "GET"))
            allow = ", ".join(sorted((exc.headers or {}).get("Allow", method).split(", ")))
            response = self._reject(request, endpoint, started, BadRequest(
                405, "method_not_allowed", f"{request.method} {path}: use {method}"))
            response.headers["Allow"] = allow
            return response
        return self._reject(request, "other", started,
                            BadRequest(exc.status_code, "bad_request", str(exc.detail)))

    async def server_error(self, request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        endpoint = _ROUTES.get(request.url.path, ("other", None))[0]
        return self._reject(request, endpoint, time.perf_counter(), BadRequest(
            500, "error", f"internal error: {type(exc).__name__}: {exc}", close=True))


class _Scrape:
    """prometheus-client's ASGI exposition app, counted like the other endpoints (an instance,
    not a function, so Starlette's Route hands it the raw ASGI call)."""

    def __init__(self, metrics: ServingMetrics) -> None:
        self.metrics, self.app = metrics, make_asgi_app(metrics.registry)

    async def __call__(self, scope, receive, send) -> None:
        self.metrics.request("metrics", "ok", 200, 0.0)
        await self.app(scope, receive, send)


def create_app(source: ChampionSource, metrics: ServingMetrics, limits: Limits,
               access: AccessLog | None = None, lifespan=None) -> Starlette:
    api = PolicyApp(source, metrics, limits, access)
    methods = {"POST": ["POST"], "GET": ["GET"]}  # GET routes also answer HEAD
    routes = [Route(path, getattr(api, endpoint), methods=methods[method])
              for path, (endpoint, method) in _ROUTES.items() if endpoint != "metrics"]
    routes.append(Route("/metrics", _Scrape(metrics), methods=["GET"]))
    return Starlette(routes=routes, lifespan=lifespan,
                     exception_handlers={HTTPException: api.http_error,
                                         Exception: api.server_error})
