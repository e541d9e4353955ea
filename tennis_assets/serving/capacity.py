"""The server's capacity under connection exhaustion: one client holding many idle connections
must not deny service to the others.

uvicorn's own bound (``limit_concurrency``) counts open connections and answers every request
beyond it with a plain-text 503, health checks included, so 1,000 idle connections held open by
one client (reopened as they time out) refused everybody else for as long as it kept them.
Here instead:

- open connections: past ``max_connections``, a new connection closes the idlest idle ones
  (no request being answered, and nothing received for ``SHED_AFTER_IDLE_S``: one that has
  sent nothing, one stalled part-way through its request, which gets a JSON 503, or a
  keep-alive connection between requests), those never answered first (what a hog holds),
  then least recently active first (``Shedder``; the protocol in ``protocol.py`` calls it).
  A client that connects and sends its request at once is never chosen, however fast the
  hog reopens what was closed: the open connections stay within the limit plus those opened
  in the last ``SHED_AFTER_IDLE_S``;
- requests in progress: past ``limit``, a JSON 503 with ``Retry-After`` (``RequestLimit``),
  except the health checks, which are always answered: an orchestrator must not restart a
  server that is busy, only one that is dead.
"""

from __future__ import annotations

import heapq
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

# Always answered, however busy: liveness, readiness, MLflow's ping.
HEALTH_PATHS = frozenset({"/healthz", "/readyz", "/ping"})
# Past the limit, shed this share of it more than needed, so a stream of new connections does
# not scan every connection on each accept.
SHED_HEADROOM = 0.02
# Only connections silent this long are shed. Without it, a hog reopening what was closed can
# make a just-accepted connection the oldest idle one before its request is read (one loop
# turn accepts many connections): a well-behaved client sends its request well within this.
# It also paces the churn: a hog holding twice the limit and reopening at once had 1,000
# connections a second shed and reopened at 1 s (measured, bench/bench_idle_connections.py),
# which took the cores from everyone; at 3 s a third of that. Silent connections are closed
# anyway at --request-timeout (10 s).
SHED_AFTER_IDLE_S = 3.0
# At most one pass over the connections per this many seconds: a hog that reopens each closed
# connection at once would otherwise have every one of its reopenings scan and shed again (a
# thousand passes a second, measured), which costs everyone else the CPU. Between passes the
# open connections may exceed the limit by those accepted meanwhile.
SHED_EVERY_S = 0.1
# At most one log line per this many seconds about shedding (an attack would flood the log).
LOG_EVERY_S = 10.0


class Shedder:
    """Counts and logs (rate-limited) the idle connections closed to make room."""

    def __init__(self) -> None:
        self.total = 0
        self._unlogged = 0
        self._logged_at = 0.0
        self._next_pass = float("-inf")  # on the protocol's clock

    def shed(self, connections: Iterable[Any], max_connections: int, newcomer: Any,
             now: float) -> int:
        """Close idle connections of ``connections`` (protocols with ``idle_since`` giving
        (ever answered, last active) on the clock of ``now``, and ``shed``) so that at most
        ``max_connections`` less the headroom stay open, of those silent for
        ``SHED_AFTER_IDLE_S``: the never answered first, idlest first; a kept-alive connection
        that was answered only while those answered alone exceed the limit (a well-behaved
        client keeps its connection however many a hog holds). ``newcomer`` (the connection
        just accepted) is never chosen. Returns how many."""
        pool = list(connections)
        excess = len(pool) - max_connections
        if excess <= 0 or now < self._next_pass:
            return 0
        want = excess + max(1, int(max_connections * SHED_HEADROOM))
        idle = [(*state, id(p), p) for p in pool if p is not newcomer
                and (state := p.idle_since()) is not None]
        never = [entry for entry in idle if not entry[0]]
        ripe = [entry for entry in never if now - entry[1] >= SHED_AFTER_IDLE_S]
        chosen = heapq.nsmallest(want, ripe)
        others_over = len(pool) - len(never) - max_connections
        if len(chosen) < want and others_over > 0:
            answered = [entry for entry in idle if entry[0]
                        and now - entry[1] >= SHED_AFTER_IDLE_S]
            chosen += heapq.nsmallest(min(want - len(chosen), others_over), answered)
        for *_, protocol in chosen:
            protocol.shed()
        self._next_pass = now + SHED_EVERY_S
        if len(chosen) < want:
            # Nothing more can be shed before the youngest idle ones ripen.
            young = [since for _, since, _, _ in idle if now - since < SHED_AFTER_IDLE_S]
            self._next_pass = max(self._next_pass,
                                  min(young, default=now) + SHED_AFTER_IDLE_S)
        self._count(len(chosen), len(pool), max_connections,
                    now - min((since for _, since, _, _ in chosen), default=now))
        return len(chosen)

    def _count(self, n: int, open_: int, limit: int, idlest_s: float) -> None:
        self.total += n
        self._unlogged += n
        now = time.monotonic()
        if now - self._logged_at < LOG_EVERY_S:
            return
        self._logged_at = now
        if self._unlogged:
            log.warning("connection limit %d reached (%d open): closed %d idle connections "
                        "since the last report, the idlest first (idle up to %.1f s); %d in all",
                        limit, open_, self._unlogged, idlest_s, self.total)
        else:
            log.warning("connection limit %d reached (%d open) and none can be closed yet (each "
                        "is being answered, kept alive by a client it answered, or active in "
                        "the last %.0f s)", limit, open_, SHED_AFTER_IDLE_S)
        self._unlogged = 0


def raise_descriptor_limit(max_connections: int) -> int:
    """Raise this process's open-file limit (soft, up to the hard one) to hold
    ``max_connections`` and those opened since the last shedding pass, so that accepting never
    fails for want of a descriptor (a 1,024 soft limit is common); returns the limit now."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 3 * max_connections + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft != resource.RLIM_INFINITY and soft < max_connections + 256:
        log.warning("open-file limit %d (hard) is close to --max-concurrency %d: connections "
                    "past it wait until one closes", soft, max_connections)
    return soft


def overloaded_body(limit: int) -> bytes:
    return json.dumps({"error": f"server busy: {limit} requests in progress, the limit; "
                                "retry shortly"}).encode()


class RequestLimit:
    """ASGI middleware: at most ``limit`` requests in progress, beyond it a JSON 503 with
    ``Retry-After: 1``; the health checks (``HEALTH_PATHS``) are always let through."""

    def __init__(self, app: Callable, limit: int,
                 on_rejected: Callable[[int, str], None] = lambda status, outcome: None
                 ) -> None:
        self.app, self.limit, self.on_rejected = app, int(limit), on_rejected
        self.active = 0
        self._body = overloaded_body(self.limit)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit and scope["path"] not in HEALTH_PATHS:
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(self._body)).encode()),
                (b"retry-after", b"1")]})
            await send({"type": "http.response.body", "body": self._body})
            self.on_rejected(503, "overloaded")
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
