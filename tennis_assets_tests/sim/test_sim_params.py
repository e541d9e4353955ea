from __future__ import annotations

import math

import pytest

from tennis_assets.sim import CourtParams


def test_defaults_are_the_04_build():
    p = CourtParams()
    assert (p.ball_scale, p.racket_angle_deg, p.gravity, p.real_ball_velocity, p.max_decisions) == (
        1.0, 55.0, -9.81, False, 1000,
    )
    assert CourtParams.from_dict(p.to_dict()) == p


@pytest.mark.parametrize(
    "field, value",
    [
        ("gravity", 9.81),
        ("gravity", 0.0),
        ("gravity", math.nan),
        ("gravity", -math.inf),
        ("ball_scale", 0.0),
        ("ball_scale", -1.0),
        ("ball_scale", math.inf),
        ("ball_scale", True),
        ("racket_angle_deg", 0.0),
        ("racket_angle_deg", 90.0),
        ("racket_angle_deg", "55"),
        ("max_decisions", 0),
        ("max_decisions", 10.0),
        ("real_ball_velocity", 1),
    ],
)
def test_invalid_values_name_the_field_and_value(field, value):
    with pytest.raises(ValueError, match=field) as err:
        CourtParams(**{field: value})
    assert repr(value) in str(err.value)


def test_frozen_and_unknown_fields():
    p = CourtParams()
    with pytest.raises(ValueError, match="frozen"):
        p.gravity = -1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown"):
        CourtParams.from_dict({"gravty": -9.81})
