"""The one seed rule: every seed the project takes (learners, training runs, the simulator,
evaluations) is a whole number in [0, SEED_MAX], checked here so the error names the seed.

No numpy, torch or Dagster: the simulator imports it."""

from __future__ import annotations

import operator
from typing import Any

# The widest seed every generator the project seeds accepts (numpy's legacy RandomState is the
# narrowest: 32 bits); one bound for all of them, so a seed valid in one place is valid in all.
SEED_MAX = 2**32 - 1


def check_seed(value: Any, name: str | None = "seed") -> int:
    """``value`` as an int in [0, SEED_MAX], or a ValueError naming ``name`` (None: the caller
    names the field and the value, as a configuration model's errors do).

    bool is refused (True is no seed anyone means); numpy integers are accepted and returned as
    int, so configs stay JSON."""
    try:
        seed = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        seed = None
    if seed is None or not 0 <= seed <= SEED_MAX:
        rule = f"must be a whole number in [0, {SEED_MAX}]"
        raise ValueError(rule if name is None else f"{name} {rule}, got {value!r}")
    return seed
