"""Where asset values live: the model store (checkpoints, histories, plots) and a JSON IO
manager for the small values that flow between assets.

A checkpoint is written exactly once, as safetensors, by the asset that trains it; the value
passed downstream (``TrainedAgent``) only names it. Nothing is pickled: the IO manager writes
JSON, histories are CSV.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import dagster as dg

from tennis_assets.config.model import Record
from tennis_assets.files import atomic_write_text, read_json_object, to_json
from tennis_assets.settings import data_dir
from tennis_assets.workflow.candidate import TrainedAgent
from tennis_assets.workflow.evaluation import EvaluationReport

__all__ = ["JsonIOManager", "ModelStore", "TrainedAgent"]


def _root(base_dir: str, default: str) -> Path:
    # Resolved per call, not at import: the data directory may be set after Definitions load.
    return Path(base_dir).expanduser() if base_dir else data_dir() / default


class ModelStore(dg.ConfigurableResource):
    """Checkpoints and training artifacts under ``<data dir>/models`` (or ``base_dir``)."""

    base_dir: str = ""

    def root(self) -> Path:
        return _root(self.base_dir, "models")

    def agent_dir(self, partition: str, run_id: str) -> Path:
        # One folder per run: a later run never overwrites the checkpoint a champion came from.
        path = self.root() / "trained_agents" / partition / run_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def training_index(self) -> Path:
        """Where finished trainings are indexed by their inputs' digest, for reuse
        (tennis_assets.workflow.reuse)."""
        return self.root() / "trained_agents" / "by_key"

    def resume_path(self, partition: str, root_run_id: str) -> Path:
        """Where training of ``partition`` keeps its resume state for a run and all its
        re-executions and retries (they share the root run id), so a retried run continues
        where the killed or terminated one stopped."""
        return self.root() / "trained_agents" / partition / "resume" / f"{root_run_id}.safetensors"

    def report_dir(self, partition: str, run_id: str) -> Path:
        path = self.root() / "evaluation_report" / partition / run_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _latest_path(self, partition: str) -> Path:
        return self.root() / "evaluation_report" / partition / "latest.json"

    def write_latest_report(self, partition: str, report: EvaluationReport) -> None:
        atomic_write_text(self._latest_path(partition), report.to_json())

    def latest_reports(self) -> dict[str, EvaluationReport]:
        """The newest evaluation report of each candidate partition that has one."""
        out = {}
        base = self.root() / "evaluation_report"
        if base.is_dir():
            for folder in sorted(base.iterdir()):
                path = folder / "latest.json"
                if path.is_file():
                    out[folder.name] = EvaluationReport.read(
                        path, f"the latest evaluation report of {folder.name}",
                        f"run `retrain` for partition {folder.name} to evaluate it again")
        return out

    def run_report(self, partition: str, run_id: str) -> EvaluationReport | None:
        """The evaluation report run ``run_id`` wrote for ``partition`` (None: none)."""
        path = self.root() / "evaluation_report" / partition / run_id / "report.json"
        if not path.is_file():
            return None
        return EvaluationReport.read(path, f"the evaluation report of {partition} in run {run_id}",
                                     f"run `retrain` for partition {partition} to evaluate it "
                                     "again")

    def production_pointer(self) -> Path:
        """The pointer to the champion for readers without MLflow (the serving layer); its
        folder also holds the promotion lock (tennis_assets.workflow.production)."""
        return self.root() / "production" / "champion.json"


def _record_type(name: str) -> type[Record]:
    """The record class a stored value names (``module:Class``), only ever a Record of this
    package: a stored value never chooses what code runs."""
    module, _, cls = name.partition(":")
    if not module.startswith("tennis_assets."):
        raise ValueError(f"stored value of unknown type {name!r}")
    found = getattr(importlib.import_module(module), cls, None)
    if not (isinstance(found, type) and issubclass(found, Record)):
        # ValueError: a corrupt store entry is bad data, not a caller bug.
        raise ValueError(f"stored value of unknown type {name!r}")  # noqa: TRY004
    return found


class JsonIOManager(dg.ConfigurableIOManager):
    """Stores each asset value (a JSON-able dict, or a typed record) as one JSON file per
    partition under ``<data dir>/assets``. Unpartitioned readers of a partitioned asset get a
    dict {partition: value} of the partitions that exist."""

    base_dir: str = ""

    def _path(self, asset_key: dg.AssetKey, partition: str | None) -> Path:
        return _root(self.base_dir, "assets").joinpath(*asset_key.path) / \
            f"{partition or '__unpartitioned__'}.json"

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        # The run's partition key is not this asset's when the asset is unpartitioned.
        partition = context.asset_partition_key if context.has_asset_partitions else None
        if isinstance(obj, Record):
            doc = {"__type__": f"{type(obj).__module__}:{type(obj).__name__}",
                   "value": obj.to_dict()}
        else:
            doc = {"__type__": "json", "value": obj}
        atomic_write_text(self._path(context.asset_key, partition),
                          to_json(doc, indent=2))

    def _read(self, path: Path) -> Any:
        doc = read_json_object(path, "the stored asset value", "materialize the asset again")
        kind = doc.get("__type__")
        if kind == "TrainedAgent":  # stored before records named their module
            kind = "tennis_assets.workflow.candidate:TrainedAgent"
        if kind in (None, "json"):
            return doc["value"]
        return _record_type(kind).model_validate(doc["value"])

    def read(self, asset_key: dg.AssetKey, partition: str | None) -> Any:
        path = self._path(asset_key, partition)
        if not path.exists():
            raise FileNotFoundError(f"no stored value for {asset_key.to_user_string()}"
                                    f"{f'[{partition}]' if partition else ''} at {path}; "
                                    "materialize it first")
        return self._read(path)

    def read_optional(self, asset_key: dg.AssetKey, partition: str | None) -> Any:
        try:
            return self.read(asset_key, partition)
        except FileNotFoundError:
            return None

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.asset_key
        if context.has_asset_partitions:
            keys = list(context.asset_partition_keys)
            if len(keys) == 1 and context.has_partition_key and \
                    context.partition_key == keys[0]:
                return self.read(key, keys[0])
            return {k: v for k in keys if (v := self.read_optional(key, k)) is not None}
        if (context.definition_metadata or {}).get("optional"):
            # e.g. the baseline candidate runs whether or not a study exists yet.
            return self.read_optional(key, None)
        return self.read(key, None)
