"""Candidates are partitions: the baseline (tuned defaults) and the study's best parameters,
the seed project's "baseline vs optimized" matrix."""

import dagster as dg

from .config import PARTITIONS

agent_partitions = dg.StaticPartitionsDefinition(list(PARTITIONS))


def candidate_partition(context: dg.AssetExecutionContext) -> str:
    """The run's candidate (its partition). A run launched without one, e.g. by `dagster job
    execute` without the partition tag, fails before any work, saying how to give one."""
    if not context.has_partition_key:
        raise dg.Failure(
            f"no candidate: {context.asset_key.to_user_string()} is partitioned by candidate "
            f"({', '.join(PARTITIONS)}); give the run one: pick it in the UI's launchpad, or "
            "`dagster job execute -m tennis_assets.definitions -j retrain --tags "
            "'{\"dagster/partition\": \"baseline\"}'`, or `dagster asset materialize -m "
            "tennis_assets.definitions --select trained_agents,evaluation_report --partition "
            "baseline`", allow_retries=False)
    return context.partition_key
