"""Which model the server answers with: the registered model's alias (``champion``), reloaded in
the background when the alias moves to another version.

The served model is one immutable ``LoadedModel`` held in a single attribute. A reload builds the
new one completely (download, load, a test inference) before assigning it, so a request sees
either the old model or the new one, never a half-loaded mix, and needs no lock: in CPython an
attribute read is atomic. A reload that fails leaves the old model in place and is reported to
``on_failure``; the next poll tries again.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    alias: str
    run_id: str | None
    source: str
    learner: Any  # tennis_assets.agents.Learner
    policy: Callable[[np.ndarray], np.ndarray]  # the registered ONNX actor
    implementation: str  # "onnxruntime"
    loaded_at: float  # unix time
    load_seconds: float
    # What a request must hold and what it is answered with, per observation: (agents,
    # obs_size) and (agents, action_size), the ONNX actor's own (Tennis: (2, 24) and (2, 2)).
    obs_shape: tuple[int, int]
    action_shape: tuple[int, int]
    environment: str  # the environment spec its checkpoint was trained on, e.g. "tennis"

    def act(self, obs: np.ndarray) -> np.ndarray:
        """obs float32 [N, agents, obs_size] -> greedy actions float32 [N, agents,
        action_size] in [-1, 1]."""
        return self.policy(obs)

    def describe(self) -> str:
        """The model's shapes in words, for log lines."""
        return (f"{self.environment}: observations [{', '.join(map(str, self.obs_shape))}] -> "
                f"actions [{', '.join(map(str, self.action_shape))}]")


def load_version(tracker: Any, info: Any, alias: str) -> LoadedModel:
    """Registered version ``info`` (a ChampionInfo) loaded as the server serves it: its ONNX
    actor, checked against its checkpoint's torch actor on a probe batch of the checkpoint's
    own shape. Raises when it cannot be served (a missing or corrupt file, an ONNX input of
    another shape than the checkpoint's, disagreeing networks). Promotion and rollback call it
    before the alias moves (tennis_assets.workflow.production)."""
    from tennis_assets.training import load_learner
    from tennis_assets.training.checkpoints import read_metadata, stored_environment
    from tennis_assets.training.export import INPUT, onnx_input_shape, onnx_session

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="tennis-serve-"))
    try:
        onnx_path, checkpoint = tracker.model_files(tracker.download_model(info, tmp))
        session = onnx_session(onnx_path)
        learner = load_learner(checkpoint, device="cpu")
        environment = stored_environment(read_metadata(checkpoint)).env
    finally:
        # The session and the learner hold their weights in memory.
        shutil.rmtree(tmp, ignore_errors=True)

    def policy(obs: np.ndarray) -> np.ndarray:
        return session.run(None, {INPUT: obs})[0]

    what = f"model {info.name} version {info.version}"
    cfg = learner.config
    obs_shape, action_shape = (cfg.num_agents, cfg.obs_size), (cfg.num_agents, cfg.action_size)
    if onnx_input_shape(session) != obs_shape:
        raise ValueError(f"{what}: its ONNX actor takes observations "
                         f"{list(onnx_input_shape(session))} per step, its checkpoint's "
                         f"learner {list(obs_shape)}")
    _check_probe(policy, learner, obs_shape, action_shape, what)
    return LoadedModel(name=info.name, version=str(info.version), alias=alias,
                       run_id=info.run_id, source=info.source, learner=learner,
                       policy=policy, implementation="onnxruntime", loaded_at=time.time(),
                       load_seconds=time.perf_counter() - started, obs_shape=obs_shape,
                       action_shape=action_shape, environment=environment)


def _check_probe(policy: Callable[[np.ndarray], np.ndarray], learner: Any,
                 obs_shape: tuple[int, int], action_shape: tuple[int, int], what: str) -> None:
    """The registered ONNX file is what answers; it must be the network the checkpoint holds,
    and a model that cannot act on a valid observation must never replace one that can."""
    import torch

    from tennis_assets.agents.actor_module import ActorModule

    probe = np.random.default_rng(0).standard_normal((7, *obs_shape)).astype(np.float32) * 3
    got = policy(probe)
    with torch.no_grad():
        want = ActorModule.from_learner(learner)(torch.from_numpy(probe)).numpy()
    if got.shape != (7, *action_shape) or not np.allclose(got, want, atol=1e-5, rtol=0):
        raise ValueError(f"{what}: its ONNX actor disagrees with its checkpoint's torch actor "
                         "on a probe batch")


class ChampionSource:
    """Polls ``tracker`` for ``model_name@alias`` every ``poll_interval_s`` and serves the newest.

    tracker: a ``tennis_assets.tracking.mlflow_tracking.MlflowTracker`` (or anything with its
    ``champion``, ``download_model`` and ``model_files`` methods).
    """

    def __init__(self, tracker: Any, model_name: str, alias: str = "champion",
                 poll_interval_s: float = 10.0,
                 on_loaded: Callable[[LoadedModel], None] | None = None,
                 on_failure: Callable[[str, BaseException], None] | None = None) -> None:
        # A thread's wait takes at most about 2**63 ns; a day between polls is beyond any use.
        if not 0 < poll_interval_s <= 86_400:
            raise ValueError(f"poll_interval_s={poll_interval_s!r}: must be > 0 and at most "
                             "86400 s")
        self.tracker, self.model_name, self.alias = tracker, model_name, alias
        self.poll_interval_s = float(poll_interval_s)
        self._on_loaded = [on_loaded] if on_loaded else []
        self._on_failure = [on_failure] if on_failure else []
        self.current: LoadedModel | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # One refresh at a time: the poller and an explicit refresh() must not both download.
        self._refresh_lock = threading.Lock()

    def check(self) -> None:
        """The model and the alias exist in the registry, else a ValueError naming the models
        or aliases that do (a server started on a typo would otherwise wait forever)."""
        from mlflow.exceptions import MlflowException

        client = self.tracker.client
        try:
            model = client.get_registered_model(self.model_name)
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" not in str(getattr(exc, "error_code", "")):
                raise ValueError(f"registry {self.tracker.tracking_uri}: {exc}") from None
            names = sorted(m.name for m in client.search_registered_models(max_results=100))
            raise ValueError(f"no registered model {self.model_name!r} in "
                             f"{self.tracker.tracking_uri}; registered models: "
                             f"{', '.join(names) or 'none'}") from None
        aliases = dict(model.aliases or {})
        if self.alias not in aliases:
            known = ", ".join(f"{a} (version {v})" for a, v in sorted(aliases.items()))
            raise ValueError(f"model {self.model_name!r} has no alias {self.alias!r}; its "
                             f"aliases: {known or 'none'}")

    def subscribe(self, on_loaded: Callable[[LoadedModel], None] | None = None,
                  on_failure: Callable[[str, BaseException], None] | None = None) -> None:
        """Also call these after each swap / each failure (the server's metrics do)."""
        if on_loaded:
            self._on_loaded.append(on_loaded)
        if on_failure:
            self._on_failure.append(on_failure)

    def refresh(self) -> bool:
        """Look the alias up once; load and swap in its version if it differs from the served
        one. Returns True when a new model was swapped in. Failures are reported to
        ``on_failure`` (kind "registry" or "load") and leave the served model as it was."""
        with self._refresh_lock:
            try:
                info = self.tracker.champion(self.model_name, self.alias)
            except Exception as exc:  # noqa: BLE001 - the registry may be down a while: serve on
                self._failed("registry", exc)
                return False
            if info is None:
                # champion() also answers None when the registry fails; ask once more, so an
                # unreachable registry is counted rather than taken for "no champion".
                try:
                    self.tracker.client.get_registered_model(self.model_name)
                except Exception as exc:  # noqa: BLE001 - as above: any registry failure counts
                    if "RESOURCE_DOES_NOT_EXIST" not in str(getattr(exc, "error_code", "")):
                        self._failed("registry", exc)
                        return False
                log.log(logging.INFO if self.current is None else logging.WARNING,
                        "no model %s@%s in the registry%s", self.model_name, self.alias,
                        "" if self.current is None else
                        f"; still serving version {self.current.version}")
                return False
            current = self.current
            if current is not None and current.version == info.version:
                return False
            try:
                model = self._load(info)
            except Exception as exc:  # noqa: BLE001 - a bad version must not stop the serving one
                self._failed("load", exc, f"version {info.version}")
                return False
            if current is not None and current.obs_shape != model.obs_shape:
                # A promotion to another game: requests after the swap are validated against
                # the new shape, and clients still sending the old one get 400s naming it.
                log.warning("%s@%s: version %s takes another shape than version %s "
                            "(%s, was %s); requests of the old shape now get 400",
                            self.model_name, self.alias, model.version, current.version,
                            model.describe(), current.describe())
            self.current = model
            log.info("serving %s version %s (alias %s, %s actor, %s), loaded in %.2f s",
                     model.name, model.version, self.alias, model.implementation,
                     model.describe(), model.load_seconds)
            for callback in self._on_loaded:
                callback(model)
            return True

    def _load(self, info: Any) -> LoadedModel:
        return load_version(self.tracker, info, self.alias)

    def _failed(self, kind: str, exc: BaseException, what: str = "") -> None:
        serving = self.current.version if self.current is not None else "nothing"
        log.warning("%s@%s: %s failure%s (%s: %s); still serving %s", self.model_name,
                    self.alias, kind, f" for {what}" if what else "", type(exc).__name__, exc,
                    serving)
        for callback in self._on_failure:
            callback(kind, exc)

    # ---- background polling -------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="champion-poller", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception:  # refresh reports its own failures; this is a last resort
                log.exception("champion poller: unexpected error")
            if self._stop.wait(self.poll_interval_s):
                return

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
