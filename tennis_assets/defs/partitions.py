"""Candidates are partitions: the baseline (tuned defaults) and the study's best parameters,
the seed project's "baseline vs optimized" matrix."""

import dagster as dg

from .config import PARTITIONS

agent_partitions = dg.StaticPartitionsDefinition(list(PARTITIONS))
