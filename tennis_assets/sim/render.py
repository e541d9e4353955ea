"""Drawing courts and rallies with Pillow: one frame per decision, GIFs of whole episodes."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tennis_assets.files import atomic_write

from . import physics as ph
from .params import CourtParams
from .vector_env import VecTennis

WIDTH, HEIGHT = 480, 270
# World window: the whole court across, from just under the floor to above the serve height.
X_MIN, X_MAX = -13.0, 13.0
Y_MIN = -4.0
SCALE = WIDTH / (X_MAX - X_MIN)

# Palette images keep GIFs small: a handful of flat colours, no dithering.
_PALETTE = {
    "sky": (22, 28, 44),
    "floor": (46, 125, 70),
    "wall": (120, 120, 130),
    "net": (235, 235, 235),
    "line": (70, 80, 110),
    "left": (220, 70, 60),  # player A
    "right": (70, 130, 230),  # player B
    "ball": (220, 240, 60),
    "text": (250, 250, 250),
}
_INDEX = {name: i for i, name in enumerate(_PALETTE)}
_FLAT_PALETTE = [v for rgb in _PALETTE.values() for v in rgb]

State = Mapping[str, Any]


def _px(x: float, y: float) -> tuple[float, float]:
    return (x - X_MIN) * SCALE, HEIGHT - (y - Y_MIN) * SCALE


def court_state(snapshot: Mapping[str, np.ndarray], court: int = 0) -> dict[str, Any]:
    """One court's entry of a ``VecTennis.snapshot()`` as plain floats (what the renderer draws)."""
    return {
        "ball_x": float(snapshot["ball_x"][court]),
        "ball_y": float(snapshot["ball_y"][court]),
        "racket_x": [float(v) for v in snapshot["racket_x"][court]],
        "racket_y": [float(v) for v in snapshot["racket_y"][court]],
        "returns": ([float(v) for v in snapshot["returns"][court]] if "returns" in snapshot
                    else [0.0, 0.0]),
        "decisions": int(snapshot["decisions"][court]) if "decisions" in snapshot else 0,
    }


def racket_polygon(ref_x: float, ref_y: float, agent: int, angle_deg: float
                   ) -> list[tuple[float, float]]:
    """Corners of the tilted racket rectangle in court coordinates (agent 0 right, 1 left)."""
    side = 1.0 - 2.0 * agent
    t = math.radians(angle_deg)
    ux, uy = -side * math.cos(t), math.sin(t)  # hitting-face normal
    vx, vy = -uy, ux
    cx = ref_x + side * ph.RACKET_OFFSET_X
    cy = ref_y + ph.RACKET_OFFSET_Y
    hu, hv = ph.RACKET_HALF_THICKNESS, ph.RACKET_HALF_LENGTH
    return [
        (cx + su * hu * ux + sv * hv * vx, cy + su * hu * uy + sv * hv * vy)
        for su, sv in ((1, 1), (1, -1), (-1, -1), (-1, 1))
    ]


def _draw_p(state: State, params: CourtParams, caption: str | None) -> Image.Image:
    img = Image.new("P", (WIDTH, HEIGHT), _INDEX["sky"])
    img.putpalette(_FLAT_PALETTE)
    d = ImageDraw.Draw(img)
    # Over line (the reward trigger), floor, back walls, net.
    x0, y0 = _px(0.0, ph.OVER_TOP)
    _x1, y1 = _px(0.0, ph.OVER_BOTTOM)
    for y in np.arange(y0, y1, 8.0):
        d.line([(x0, y), (x0, min(y + 4.0, y1))], fill=_INDEX["line"])
    d.rectangle([_px(-ph.FLOOR_HALF_WIDTH, ph.FLOOR_Y), _px(ph.FLOOR_HALF_WIDTH, Y_MIN)],
                fill=_INDEX["floor"])
    for sx in (-1.0, 1.0):
        a = _px(sx * ph.WALL_X, ph.WALL_TOP)
        b = _px(sx * (ph.WALL_X + 0.6), Y_MIN)
        d.rectangle([min(a[0], b[0]), a[1], max(a[0], b[0]), b[1]], fill=_INDEX["wall"])
    nx0, ny0 = _px(-ph.NET_HALF_WIDTH, ph.NET_TOP)
    nx1, ny1 = _px(ph.NET_HALF_WIDTH, ph.NET_BOTTOM)
    d.rectangle([nx0 - 1, ny0, nx1 + 1, ny1], fill=_INDEX["net"])
    for agent, colour in ((0, "right"), (1, "left")):
        poly = racket_polygon(state["racket_x"][agent], state["racket_y"][agent], agent,
                              params.racket_angle_deg)
        d.polygon([_px(x, y) for x, y in poly], fill=_INDEX[colour])
    r = ph.BALL_RADIUS * params.ball_scale * SCALE
    bx, by = _px(state["ball_x"], state["ball_y"])
    d.ellipse([bx - r, by - r, bx + r, by + r], fill=_INDEX["ball"])
    ret = state.get("returns", [0.0, 0.0])
    font = ImageFont.load_default()
    d.text((24, 6), f"A {ret[1]:+.2f}", fill=_INDEX["left"], font=font)
    d.text((WIDTH - 84, 6), f"B {ret[0]:+.2f}", fill=_INDEX["right"], font=font)
    text = caption if caption is not None else f"decision {state.get('decisions', 0)}"
    d.text((WIDTH // 2 - 40, 6), text, fill=_INDEX["text"], font=font)
    return img


def render_frame(state: State, params: CourtParams | None = None, caption: str | None = None
                 ) -> np.ndarray:
    """RGB frame uint8 [270, 480, 3] of one court state (see ``court_state``)."""
    return np.asarray(_draw_p(state, params or CourtParams(), caption).convert("RGB"))


def save_rally_gif(
    frames_or_states: Sequence[np.ndarray] | Sequence[State],
    path: str | Path,
    params: CourtParams | None = None,
    max_frames: int = 300,
    decision_ms: int = 100,
) -> Path:
    """Write a looping GIF. Accepts RGB frames or court states; longer sequences are subsampled
    evenly to at most ``max_frames`` frames, keeping the episode's real speed."""
    items = list(frames_or_states)
    if not items:
        raise ValueError("save_rally_gif needs at least one frame or state")
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    stride = max(1, math.ceil(len(items) / max_frames))
    picked = items[::stride]
    if picked[-1] is not items[-1]:
        picked.append(items[-1])  # always show how the rally ended
    params = params or CourtParams()
    images = []
    for item in picked:
        if isinstance(item, Mapping):
            images.append(_draw_p(item, params, None))
        else:
            arr = np.asarray(item, dtype=np.uint8)
            images.append(Image.fromarray(arr).convert("P", palette=Image.Palette.ADAPTIVE,
                                                       colors=32))
    durations = [decision_ms * stride] * len(images)
    durations[-1] = 1000  # linger on the ending
    # Whole or not at all (an interrupted replay leaves no half GIF); an unwritable path is
    # named (files.NotWritableError).
    return atomic_write(path, lambda tmp: images[0].save(
        tmp, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0,
        optimize=True))


def record_episode(
    policy_fn: Callable[[np.ndarray], np.ndarray],
    params: CourtParams | None = None,
    seed: int | None = 0,
    max_decisions: int | None = None,
) -> tuple[list[dict[str, Any]], float, int]:
    """Play one episode on one court with ``policy_fn`` (obs [1, 2, 24] -> actions [1, 2, 2]).

    Returns (states, score, length): ``states`` holds the served state and the state after every
    decision, including the ending one, ready for ``save_rally_gif``.
    """
    params = params or CourtParams()
    if max_decisions is not None:
        params = params.replace(max_decisions=int(max_decisions))
    env = VecTennis(1, params, seed=seed, auto_reset=False)
    obs = env.reset(seed=seed)  # the same serve as VecTennis(1, params, seed=seed) shows
    states = [court_state(env.snapshot())]
    while True:
        res = env.step(policy_fn(obs))
        states.append(court_state(env.snapshot()))
        obs = res.obs
        if res.terminated[0] or res.truncated[0]:
            return states, float(res.episode_score[0]), int(res.episode_length[0])


def render_episode_gif(
    policy_fn: Callable[[np.ndarray], np.ndarray],
    path: str | Path,
    params: CourtParams | None = None,
    seed: int | None = 0,
    max_decisions: int | None = None,
    max_frames: int = 300,
) -> tuple[Path, float, int]:
    """``record_episode`` then ``save_rally_gif``; returns (path, score, length)."""
    states, score, length = record_episode(policy_fn, params, seed, max_decisions)
    return save_rally_gif(states, path, params, max_frames=max_frames), score, length

