from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tennis_assets.sim import CourtParams, ScriptedSwingPolicy, VecTennis
from tennis_assets.sim.physics import racket_rest_y
from tennis_assets.sim.render import (
    court_state,
    racket_polygon,
    record_episode,
    render_frame,
    save_rally_gif,
)


def test_record_episode_matches_the_vector_env():
    states, score, length = record_episode(ScriptedSwingPolicy(), CourtParams(), seed=3,
                                           max_decisions=120)
    assert length == 120 and len(states) == 121
    assert score >= 0.2
    # The same seed in VecTennis serves the same point.
    first = court_state(VecTennis(1, seed=3).snapshot())
    assert states[0] == first
    assert states[-1]["decisions"] == 120


def test_frame_shows_ball_and_rackets(tmp_path):
    state = court_state(VecTennis(1, seed=0).snapshot())
    frame = render_frame(state)
    assert frame.shape == (270, 480, 3) and frame.dtype == np.uint8
    ball = np.all(frame == (220, 240, 60), axis=-1)
    left = np.all(frame == (220, 70, 60), axis=-1)
    right = np.all(frame == (70, 130, 230), axis=-1)
    assert ball.sum() > 50 and left.sum() > 200 and right.sum() > 200
    # Left racket in the left half, right racket in the right half.
    assert np.nonzero(left)[1].mean() < 240 < np.nonzero(right)[1].mean()


def test_racket_polygon_is_tilted_at_the_racket_angle():
    poly = np.array(racket_polygon(-7.0, -1.85, agent=1, angle_deg=55.0))
    # The long (1.875) edge runs at 55 - 90 = -35 degrees from the horizontal, i.e. its
    # normal, the hitting face's, points up and toward the net at 55 degrees.
    edges = [poly[(i + 1) % 4] - poly[i] for i in range(4)]
    long_edge = max(edges, key=np.linalg.norm)
    assert np.linalg.norm(long_edge) == pytest.approx(1.875)
    angle = np.degrees(np.arctan2(long_edge[1], long_edge[0])) % 180
    assert angle == pytest.approx(145.0)
    # Placed at its resting height, the lowest corner touches the floor.
    poly = np.array(racket_polygon(-7.0, racket_rest_y(55.0), agent=1, angle_deg=55.0))
    assert poly[:, 1].min() == pytest.approx(-3.25)


def test_gif_is_small_and_subsampled(tmp_path):
    states, _, _ = record_episode(ScriptedSwingPolicy(), seed=0, max_decisions=400)
    path = save_rally_gif(states, tmp_path / "rally.gif", max_frames=100)
    with Image.open(path) as im:
        assert im.size == (480, 270)
        # 401 states at a stride of ceil(401 / 100) = 5, plus the ending frame.
        assert im.n_frames == 81
    assert path.stat().st_size < 3_000_000
    frames = [render_frame(s) for s in states[:5]]
    path2 = save_rally_gif(frames, tmp_path / "frames.gif")
    with Image.open(path2) as im:
        assert im.n_frames == 5
