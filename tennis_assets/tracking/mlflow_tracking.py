"""MLflow tracking and model registry through ``MlflowClient`` only.

Everything goes through an explicit client bound to one tracking URI rather than mlflow's global
fluent state (``mlflow.start_run``): Dagster may run several assets in one process, tests point
different instances at different databases, and an explicit client can never end somebody
else's active run (the failure mode of dagster-mlflow's legacy resource).

Default storage, when neither an argument nor ``MLFLOW_TRACKING_URI`` says otherwise: a SQLite
database and an artifact folder inside the project's data directory.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tennis_assets import settings
from tennis_assets.settings import data_dir, database_url

from .preflight import check_artifact_root, check_tracking_uri
from .tracker import finite_metrics, flatten

if TYPE_CHECKING:  # mlflow is imported where it is used: importing tracking stays cheap
    from mlflow.entities.model_registry import ModelVersion

CHAMPION, PREVIOUS, CHALLENGER = "champion", "previous", "challenger"
POLICY_ARTIFACT = "policy"
# Models-from-code: MLflow copies this file into the model instead of pickling an object.
POLICY_MODEL_CODE = Path(__file__).with_name("policy_model.py")
# MLflow refuses param values over 6000 characters.
_MAX_PARAM_CHARS = 6000
# MLflow's log_batch accepts at most 1000 metrics per call.
_BATCH = 1000


def default_tracking_uri() -> str:
    return settings.mlflow_tracking_uri()


def default_artifact_root() -> str:
    return (data_dir() / "mlflow" / "artifacts").as_uri()


@contextlib.contextmanager
def _sqlite_schema_lock(uri: str) -> Iterator[None]:
    """MLflow creates a database's tables when a client first opens it, in every process that
    finds some missing: two runs that start together on a new SQLite file both migrate it, and
    one fails ("duplicate column name: step", "No such index: ..."). Whoever holds the lock
    beside the file creates them; the others wait, then find them."""
    import fcntl

    path = Path(uri[len("sqlite:///"):].split("?", 1)[0]) if uri.startswith("sqlite:///") \
        else None
    lock = path.with_name(path.name + ".schema-lock") \
        if path is not None and path.name not in ("", ":memory:") else None
    with contextlib.ExitStack() as stack:
        try:
            handle = stack.enter_context(open(lock, "a")) if lock is not None else None
        except OSError:
            handle = None  # a read-only folder: this process cannot migrate anything there anyway
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
            stack.callback(fcntl.flock, handle, fcntl.LOCK_UN)  # before the close
        yield


class MlflowRun:
    def __init__(self, client, run_id: str, url: str | None) -> None:
        self.client, self.run_id, self.url = client, run_id, url

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        flat = flatten(params)
        batch = [Param(k, str(v)[:_MAX_PARAM_CHARS]) for k, v in sorted(flat.items())]
        for i in range(0, len(batch), 100):  # log_batch allows 100 params per call
            self.client.log_batch(self.run_id, params=batch[i:i + 100])

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, step or 0) for k, v in finite_metrics(metrics).items()]
        if batch:
            self.client.log_batch(self.run_id, metrics=batch)

    def log_series(self, name: str, values: Sequence[float],
                   steps: Sequence[int] | None = None) -> None:
        """One metric per episode (or per evaluation), batched: thousands of single log_metric
        calls would cost a database round trip each."""
        import math

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        steps = list(range(len(values))) if steps is None else list(steps)
        batch = [Metric(name, float(v), now, int(s)) for v, s in zip(values, steps)
                 if v is not None and math.isfinite(float(v))]
        for i in range(0, len(batch), _BATCH):
            self.client.log_batch(self.run_id, metrics=batch[i:i + _BATCH])

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(k, str(v)) for k, v in tags.items() if v is not None]
        if batch:
            self.client.log_batch(self.run_id, tags=batch)

    def log_policy_model(self, checkpoint: str | os.PathLike) -> str:
        """Log the checkpoint as a pyfunc model: an MLflow 3 logged model whose source is this
        run; returns its artifact location (what a model version is created from)."""
        from mlflow.entities import LoggedModelStatus

        experiment_id = self.client.get_run(self.run_id).info.experiment_id
        model = self.client.create_logged_model(experiment_id, name=POLICY_ARTIFACT,
                                                source_run_id=self.run_id,
                                                model_type="tennis-policy")
        try:
            with tempfile.TemporaryDirectory() as tmp:
                model_dir = Path(tmp) / POLICY_ARTIFACT
                save_policy_model(checkpoint, model_dir)
                self.client.log_model_artifacts(model.model_id, str(model_dir))
        except BaseException:
            self.client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
            raise
        self.client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
        return model.artifact_location


# What the pyfunc imports (policy_model.py), all on the public package index: mlflow-skinny
# for the pyfunc and its scoring server, pandas for the scoring server's input parsing.
POLICY_PACKAGES = ("mlflow-skinny", "numpy", "onnxruntime", "pandas")


def policy_pip_requirements() -> list[str]:
    """Stated, never inferred (inference imports the model in a subprocess and costs seconds);
    the versions installed here, as published (no local build label such as ``+cpu``)."""
    from importlib import metadata

    reqs = []
    for name in POLICY_PACKAGES:
        # mlflow-skinny is what a lean environment installs; here the full mlflow may stand in.
        version = metadata.version("mlflow" if name == "mlflow-skinny" else name)
        reqs.append(f"{name}=={version.split('+', 1)[0]}")
    return reqs


ONNX_ARTIFACT = "policy.onnx"


def save_policy_model(checkpoint: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write an MLflow pyfunc model folder: the greedy actor as ONNX (what the pyfunc and the
    policy server run) and the safetensors checkpoint it was exported from (what warm starts,
    evaluations and monitoring load).

    Its signature and input example are the model's own shapes, from the checkpoint's
    AgentConfig (the environment it was trained on): one tensor [-1, agents, obs_size] ->
    [-1, agents, action_size] (Tennis: [-1, 2, 24] -> [-1, 2, 2]).

    Models-from-code: the model class is a source file copied into the folder, so nothing is
    pickled; it needs neither torch nor tennis_assets.
    """
    import mlflow.pyfunc

    from tennis_assets.training import load_learner
    from tennis_assets.training.export import export_actor_onnx

    learner = load_learner(checkpoint, device="cpu")
    signature, example = policy_signature(learner.config)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_actor_onnx(learner, Path(tmp) / ONNX_ARTIFACT)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            mlflow.pyfunc.save_model(
                path=str(path), python_model=str(POLICY_MODEL_CODE),
                artifacts={"checkpoint": str(checkpoint), "onnx": str(onnx_path)},
                signature=signature, input_example=example,
                pip_requirements=policy_pip_requirements())
    return Path(path)


def policy_signature(agent_config: Any) -> tuple[Any, Any]:
    """(the tensor signature, an input example) of a policy model for ``agent_config``'s
    shapes: float32 [-1, agents, obs_size] -> float32 [-1, agents, action_size]. The example
    is one step's observations of every agent (a batch of one): what a client sends, and what
    MLflow checks the model answers while saving it."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    agents, obs_size = agent_config.num_agents, agent_config.obs_size
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, agents, obs_size))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32),
                                   (-1, agents, agent_config.action_size))]))
    return signature, np.zeros((1, agents, obs_size), np.float32)


@dataclass
class ChampionInfo:
    name: str
    version: str
    run_id: str | None
    source: str
    tags: dict[str, str]
    aliases: list[str]

    @classmethod
    def of(cls, mv: ModelVersion) -> ChampionInfo:
        """From MLflow's ModelVersion; one without a source could not be loaded."""
        if mv.source is None:
            raise ValueError(f"model {mv.name!r} version {mv.version} has no source")
        return cls(name=mv.name, version=str(mv.version), run_id=mv.run_id, source=mv.source,
                   tags=dict(mv.tags or {}), aliases=list(mv.aliases or []))

    @property
    def eval_mean(self) -> float | None:
        value = self.tags.get("eval_mean")
        return float(value) if value is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "run_id": self.run_id,
                "source": self.source, "tags": self.tags, "aliases": self.aliases,
                "eval_mean": self.eval_mean}


class MlflowTracker:
    """Tracking runs plus the registered policy model with ``champion``/``previous`` aliases."""

    def __init__(self, tracking_uri: str | None = None, experiment: str = "tennis-assets",
                 ui_url: str | None = None, artifact_root: str | None = None) -> None:
        settings.quiet_mlflow_downloads()
        # Checked before MLflow sees it: its clients retry an unusable store for minutes and
        # then fail with messages that name neither the store nor the fix.
        self.tracking_uri = database_url(check_tracking_uri(
            tracking_uri or default_tracking_uri(),
            "tracking_uri" if tracking_uri else "MLflow tracking URI ($MLFLOW_TRACKING_URI, "
                                                "else the data directory's database)"))
        if not self.tracking_uri.startswith("http"):
            check_artifact_root(artifact_root or default_artifact_root(),
                                "artifact_root" if artifact_root else "MLflow artifact folder")
        from mlflow.tracking import MlflowClient

        self.experiment = experiment
        self.ui_url = (ui_url or settings.mlflow_ui_url() or
                       (self.tracking_uri if self.tracking_uri.startswith("http")
                        else "http://127.0.0.1:5000")).rstrip("/")
        self.artifact_root = artifact_root
        with _sqlite_schema_lock(self.tracking_uri):
            self.client = MlflowClient(tracking_uri=self.tracking_uri,
                                       registry_uri=self.tracking_uri)
            if self.tracking_uri.startswith("sqlite:"):
                self.client.search_registered_models(max_results=1)  # the registry's tables
        self._experiment_id: str | None = None

    # ---- runs ------------------------------------------------------------------------------
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            exp = self.client.get_experiment_by_name(self.experiment)
            if exp is not None:
                self._experiment_id = exp.experiment_id
            else:
                # Only a local database gets the local artifact folder; a server decides itself.
                location = self.artifact_root
                if location is None and not self.tracking_uri.startswith("http"):
                    location = default_artifact_root()
                try:
                    # Classic ML, not GenAI: the MLflow UI opens the experiment on its runs.
                    self._experiment_id = self.client.create_experiment(
                        self.experiment, artifact_location=location,
                        tags={"mlflow.experimentKind": "custom_model_development"})
                except Exception:
                    # Another process created it first (parallel runs share one database).
                    exp = self.client.get_experiment_by_name(self.experiment)
                    if exp is None:
                        raise
                    self._experiment_id = exp.experiment_id
        return self._experiment_id

    def run_url(self, run_id: str) -> str:
        return f"{self.ui_url}/#/experiments/{self.experiment_id()}/runs/{run_id}"

    def model_url(self, name: str, version: str) -> str:
        return f"{self.ui_url}/#/models/{name}/versions/{version}"

    @contextlib.contextmanager
    def start_run(self, name: str, tags: Mapping[str, str] | None = None
                  ) -> Iterator[MlflowRun]:
        run = self.client.create_run(self.experiment_id(), run_name=name, tags=dict(tags or {}))
        run_id = run.info.run_id
        status = "FAILED"
        try:
            yield MlflowRun(self.client, run_id, self.run_url(run_id))
            status = "FINISHED"
        finally:
            # Always terminated here, by whoever started it: never left RUNNING, never ended early.
            self.client.set_terminated(run_id, status)

    def get_run(self, run_id: str):
        return self.client.get_run(run_id)

    def metric_series(self, run_id: str, name: str) -> list[float]:
        """A metric logged with ``log_series``, in step order ([] when the run has none)."""
        history = self.client.get_metric_history(run_id, name)
        return [m.value for m in sorted(history, key=lambda m: (m.step, m.timestamp))]

    # ---- registry --------------------------------------------------------------------------
    def champion(self, name: str, alias: str = CHAMPION) -> ChampionInfo | None:
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version_by_alias(name, alias)
        except MlflowException:
            return None
        return ChampionInfo.of(mv)

    def register_champion(self, name: str, source: str, run_id: str | None,
                          tags: Mapping[str, Any] | None = None,
                          description: str | None = None) -> ChampionInfo:
        """Create a model version from ``source`` and make it the champion; the champion it
        replaces keeps the ``previous`` alias so one call to ``rollback`` restores it."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            self.client.create_registered_model(
                name, description="Greedy Tennis policy (safetensors checkpoint, pyfunc).")
        old = self.champion(name)
        mv = self._create_version(name, source, run_id,
                                  {k: str(v) for k, v in (tags or {}).items() if v is not None},
                                  description)
        if old is not None and old.version != str(mv.version):
            self._set_alias(name, PREVIOUS, old.version)
        self._set_alias(name, CHAMPION, str(mv.version))
        info = self.champion(name)
        assert info is not None
        return info

    def _create_version(self, name: str, source: str, run_id: str | None,
                        tags: dict[str, str], description: str | None):
        """A READY model version of ``source``, linked to the logged model stored there the
        way MLflow's own ``register_model`` links them (the SQL registry keeps no model id on
        the version: the logged model's ``mlflow.modelVersions`` tag lists its versions)."""
        import json

        from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

        model_id = self._logged_model_id(source, run_id)
        mv = self.client.create_model_version(name, source=source, run_id=run_id, tags=tags,
                                              description=description, model_id=model_id)
        self._wait_ready(name, str(mv.version))
        if model_id is not None:
            listed = self.client.get_logged_model(model_id).tags.get(MLFLOW_MODEL_VERSIONS)
            versions = (json.loads(listed) if listed else []) + [
                {"name": name, "version": str(mv.version)}]
            self.client.set_logged_model_tags(model_id,
                                              {MLFLOW_MODEL_VERSIONS: json.dumps(versions)})
        return mv

    def _logged_model_id(self, source: str, run_id: str | None) -> str | None:
        """The MLflow 3 logged model stored at ``source`` (None for a source logged otherwise),
        so the model version links to it and, through it, to its training run."""
        if run_id is None:
            return None
        experiment_id = self.client.get_run(run_id).info.experiment_id
        for model in self.client.search_logged_models(
                experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}'"):
            if model.artifact_location.rstrip("/") == source.rstrip("/"):
                return model.model_id
        return None

    def _ensure_registered_model(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            try:
                self.client.create_registered_model(
                    name, description="Greedy Tennis policy (safetensors checkpoint, pyfunc).")
            except MlflowException:
                self.client.get_registered_model(name)  # created by a concurrent promotion

    def version_of_run(self, name: str, run_id: str) -> ChampionInfo | None:
        """The model version registered from ``run_id`` (the oldest, if several)."""
        versions = self.client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
        if not versions:
            return None
        mv = min(versions, key=lambda v: int(v.version))
        return ChampionInfo.of(mv)

    def register_challenger(self, name: str, source: str, run_id: str,
                            tags: Mapping[str, Any] | None = None,
                            description: str | None = None) -> ChampionInfo:
        """The version for ``run_id`` (created once: one version per training run) with the
        ``challenger`` alias; its tags and description say how it was judged this time."""
        self._ensure_registered_model(name)
        existing = self.version_of_run(name, run_id)
        str_tags = {k: str(v) for k, v in (tags or {}).items() if v is not None}
        if existing is None:
            mv = self._create_version(name, source, run_id, str_tags, description)
            version = str(mv.version)
            # Two registrations of one run can both find none and both create: each then keeps
            # the oldest and deletes its own younger copy, so they converge on one version
            # without a lock (the callers also hold one; this is for those that do not).
            oldest = self.version_of_run(name, run_id)
            if oldest is not None and oldest.version != version:
                self.client.delete_model_version(name, version)
                existing, version = oldest, oldest.version
        else:
            version = existing.version
        if existing is not None:
            for key, value in str_tags.items():
                self.client.set_model_version_tag(name, version, key, value)
            if description:
                self.client.update_model_version(name, version, description=description)
        self._set_alias(name, CHALLENGER, version)
        # The version itself, not whatever the alias says by now: a concurrent promotion may
        # already have moved it on.
        mv = self.client.get_model_version(name, version)
        return ChampionInfo.of(mv)

    def promote_challenger(self, name: str, version: str) -> tuple[ChampionInfo, bool]:
        """Make challenger ``version`` the champion (the old champion becomes ``previous``) and
        drop the challenger alias. Refuses if the alias no longer points at ``version`` (a newer
        challenger was registered meanwhile). Returns (champion, changed)."""
        challenger = self.champion(name, CHALLENGER)
        current = self.champion(name)
        if current is not None and current.version == version:
            return current, False
        if challenger is None or challenger.version != version:
            raise RuntimeError(f"model {name}: the challenger is "
                               f"{'v' + challenger.version if challenger else 'unset'}, not "
                               f"v{version}; nothing moved")
        # champion last: a failure before it leaves production as it was. ``previous`` is what
        # a rollback restores: never a copy of the model that becomes champion.
        if current is not None and not (challenger.run_id and current.run_id == challenger.run_id):
            self._set_alias(name, PREVIOUS, current.version)
        self._set_alias(name, CHAMPION, version)
        self.delete_alias(name, CHALLENGER)
        info = self.champion(name)
        assert info is not None
        return info, True

    def _set_alias(self, name: str, alias: str, version: str, attempts: int = 4) -> None:
        """MLflow sets an alias by read-then-insert: two processes setting the same alias at
        once can collide on its unique key. The loser retries; by then the row exists and is
        updated."""
        from mlflow.exceptions import MlflowException

        for attempt in range(attempts):
            try:
                self.client.set_registered_model_alias(name, alias, version)
                return
            except MlflowException:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def delete_alias(self, name: str, alias: str) -> None:
        """Unset ``alias``; already unset (a concurrent promotion got there first) is fine."""
        from mlflow.exceptions import MlflowException

        with contextlib.suppress(MlflowException):
            self.client.delete_registered_model_alias(name, alias)

    def aliases(self, name: str) -> dict[str, str | None]:
        """The lifecycle aliases and the versions they point at (None: unset)."""
        return {alias: (info.version if (info := self.champion(name, alias)) else None)
                for alias in (CHAMPION, PREVIOUS, CHALLENGER)}

    def restore_aliases(self, name: str, aliases: Mapping[str, str | None]) -> None:
        """Put the aliases back as ``aliases`` (from ``aliases()``) says; champion last."""
        for alias in sorted(aliases, key=lambda a: a == CHAMPION):
            version = aliases[alias]
            if version is not None:
                self._set_alias(name, alias, version)
            else:
                self.delete_alias(name, alias)

    def _wait_ready(self, name: str, version: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mv = self.client.get_model_version(name, version)
            if mv.status == "READY":
                return
            if mv.status == "FAILED_REGISTRATION":
                raise RuntimeError(f"model {name} version {version}: registration failed "
                                   f"({mv.status_message})")
            time.sleep(0.2)
        raise TimeoutError(f"model {name} version {version} not READY after {timeout} s")

    def rollback(self, name: str) -> ChampionInfo:
        """Swap ``champion`` and ``previous``: undoes the last promotion (twice redoes it)."""
        current, previous = self.champion(name), self.champion(name, PREVIOUS)
        if previous is None or current is None:
            raise RuntimeError(f"model {name}: nothing to roll back to (no '{PREVIOUS}' alias)")
        self._set_alias(name, CHAMPION, previous.version)
        self._set_alias(name, PREVIOUS, current.version)
        info = self.champion(name)
        assert info is not None
        return info

    def download_model(self, info: ChampionInfo, dst: str | os.PathLike) -> Path:
        import mlflow.artifacts

        return Path(mlflow.artifacts.download_artifacts(
            artifact_uri=info.source, dst_path=str(dst), tracking_uri=self.tracking_uri))

    def load_policy(self, info: ChampionInfo, dst: str | os.PathLike):
        """The registered version as a pyfunc model (predict: obs [N, agents, obs_size] ->
        actions [N, agents, action_size])."""
        import mlflow.pyfunc

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return mlflow.pyfunc.load_model(str(self.download_model(info, dst)))

    @staticmethod
    def model_files(model_dir: str | os.PathLike) -> tuple[Path, Path]:
        """(ONNX actor, safetensors checkpoint) inside a downloaded model folder."""
        artifacts = Path(model_dir) / "artifacts"
        found = sorted(artifacts.glob("*.safetensors"))
        if not found:
            raise FileNotFoundError(f"{model_dir}: no checkpoint in {artifacts}")
        onnx = artifacts / ONNX_ARTIFACT
        if not onnx.is_file():
            raise FileNotFoundError(f"{model_dir}: no {ONNX_ARTIFACT} (a model registered "
                                    "before ONNX export; register it again)")
        return onnx, found[0]

    def champion_checkpoint(self, info: ChampionInfo, dst: str | os.PathLike) -> Path:
        """The champion's safetensors checkpoint, downloaded from the registry."""
        model_dir = self.download_model(info, dst)
        found = sorted((model_dir / "artifacts").glob("*.safetensors"))
        if not found:
            raise FileNotFoundError(f"model {info.name} v{info.version}: no checkpoint in "
                                    f"{model_dir / 'artifacts'}")
        return found[0]
