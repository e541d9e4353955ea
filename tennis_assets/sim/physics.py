"""Court physics of the Tennis simulator, as scalar numba code looping over courts.

One court's state lives in a row of a float64 array (``fs``) and a row of an int64 array
(``ist``); the column layout is given by the constants below. ``step_courts`` advances every
court by one decision (5 physics steps), ``reset_courts`` serves a new point on chosen courts.
The vectorized-over-courts numpy version of this code reached only ~70k court-decisions/s; the
scalar form is both faster and reads like the spec's "order of events".

Conventions: agent 0 is the right-hand player, agent 1 the left-hand player. ``side`` is +1 for
the right player and -1 for the left one, so ``-side`` points from a player toward the net.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .params import CourtParams

# ---- float state columns (fs[c, :]) ----
BX, BY, BVX, BVY = 0, 1, 2, 3
RX, RY, RVX, RVY = 4, 6, 8, 10  # each followed by the second agent's value (RX + agent)
RET = 12  # episode reward sums, RET + agent
N_FLOAT = 14

# ---- int state columns (ist[c, :]) ----
LAST = 0  # last hitter: -1 none, 0 right player, 1 left player
BAND = 1  # 0 ball outside the over-line band, else the side (+1/-1) it entered the band from
DECISIONS = 2  # decisions taken in the current episode
N_INT = 3

NO_HITTER = -1
RIGHT = 0
LEFT = 1

# ---- params array (built by params_array) ----
P_BALL_R, P_COS, P_SIN, P_G, P_REAL_VEL, P_MAX_DEC, P_REST_Y, P_WALL_REF = range(8)
N_PARAMS = 8

# ---- the court (spec "Court" and "Bodies") ----
DT = 0.02
PHYSICS_STEPS = 5
FLOOR_Y = -3.25
FLOOR_HALF_WIDTH = 12.5
WALL_X = 12.27
WALL_TOP = 30.45
NET_HALF_WIDTH = 0.05
NET_BOTTOM = -5.0
NET_TOP = -1.0
OVER_BOTTOM = -1.0
OVER_TOP = 9.0
BALL_RADIUS = 0.5
BALL_MASS = 0.75
RACKET_MASS = 4.0
RACKET_HALF_THICKNESS = 0.55  # along the face normal (the 1.1 side)
RACKET_HALF_LENGTH = 0.9375  # along the face (the 1.875 side)
RACKET_OFFSET_X = 0.287  # centre is this far from the reference point, away from the net
RACKET_OFFSET_Y = -0.410
RUN_SPEED = 30.0
JUMP_SPEED = 7.0
JUMP_BELOW_Y = -1.5
NET_LIMIT = 1.0
BOUNCE_THRESHOLD = 2.0
MAX_BALL_SPEED = 9.0
REWARD_OVER = 0.1
REWARD_END = -0.01
SERVE_Y = 6.0
RACKET_START_Y = -1.5


def racket_extents(angle_deg: float) -> tuple[float, float]:
    """Half-extents (horizontal, vertical) of the tilted racket rectangle."""
    t = math.radians(angle_deg)
    hx = RACKET_HALF_THICKNESS * math.cos(t) + RACKET_HALF_LENGTH * math.sin(t)
    hy = RACKET_HALF_THICKNESS * math.sin(t) + RACKET_HALF_LENGTH * math.cos(t)
    return hx, hy


def racket_rest_y(angle_deg: float) -> float:
    """Reference-point y of a racket whose lowest corner rests on the floor (-1.8517 at 55 deg)."""
    return FLOOR_Y - RACKET_OFFSET_Y + racket_extents(angle_deg)[1]


def racket_wall_x(angle_deg: float) -> float:
    """|x| of the reference point when the racket touches its back wall (10.8996 at 55 deg)."""
    return WALL_X - RACKET_OFFSET_X - racket_extents(angle_deg)[0]


def params_array(params: CourtParams) -> np.ndarray:
    p = np.zeros(N_PARAMS, dtype=np.float64)
    t = math.radians(params.racket_angle_deg)
    p[P_BALL_R] = BALL_RADIUS * params.ball_scale
    p[P_COS] = math.cos(t)
    p[P_SIN] = math.sin(t)
    p[P_G] = params.gravity
    p[P_REAL_VEL] = 1.0 if params.real_ball_velocity else 0.0
    p[P_MAX_DEC] = params.max_decisions
    p[P_REST_Y] = racket_rest_y(params.racket_angle_deg)
    p[P_WALL_REF] = racket_wall_x(params.racket_angle_deg)
    return p


@njit(cache=True)
def _clip(v, lo, hi):
    return lo if v < lo else (min(v, hi))


@njit(cache=True)
def _ball_racket_contact(s, ist, agent, p):
    """Circle vs tilted rectangle; pushes the ball out, then a two-body impulse if approaching."""
    side = 1.0 - 2.0 * agent
    r = p[P_BALL_R]
    # u: hitting-face normal (up and toward the net); v: along the face.
    ux = -side * p[P_COS]
    uy = p[P_SIN]
    vx = -uy
    vy = ux
    cx = s[RX + agent] + side * RACKET_OFFSET_X
    cy = s[RY + agent] + RACKET_OFFSET_Y
    dx = s[BX] - cx
    dy = s[BY] - cy
    pu = dx * ux + dy * uy
    pv = dx * vx + dy * vy
    eu = pu - _clip(pu, -RACKET_HALF_THICKNESS, RACKET_HALF_THICKNESS)
    ev = pv - _clip(pv, -RACKET_HALF_LENGTH, RACKET_HALF_LENGTH)
    d2 = eu * eu + ev * ev
    if d2 >= r * r:
        return
    if d2 > 1e-18:
        d = math.sqrt(d2)
        nu = eu / d
        nv = ev / d
        pen = r - d
    else:
        # Ball centre inside the racket: leave through the nearest face.
        gu = RACKET_HALF_THICKNESS - abs(pu)
        gv = RACKET_HALF_LENGTH - abs(pv)
        if gu <= gv:
            nu = 1.0 if pu >= 0.0 else -1.0
            nv = 0.0
            pen = gu + r
        else:
            nu = 0.0
            nv = 1.0 if pv >= 0.0 else -1.0
            pen = gv + r
    nx = nu * ux + nv * vx
    ny = nu * uy + nv * vy
    # Only the ball is moved out: the racket's position is owned by its action and its limits.
    s[BX] += nx * pen
    s[BY] += ny * pen
    vn = (s[BVX] - s[RVX + agent]) * nx + (s[BVY] - s[RVY + agent]) * ny
    if vn < 0.0:
        e = 1.0 if -vn >= BOUNCE_THRESHOLD else 0.0
        j = -(1.0 + e) * vn / (1.0 / BALL_MASS + 1.0 / RACKET_MASS)
        s[BVX] += j / BALL_MASS * nx
        s[BVY] += j / BALL_MASS * ny
        s[RVX + agent] -= j / RACKET_MASS * nx
        s[RVY + agent] -= j / RACKET_MASS * ny
    ist[LAST] = agent


@njit(cache=True)
def _physics_step(s, ist, act, p, r0, r1):
    """One 0.02 s physics step of one court. Returns (ended, reward0, reward1) with the
    decision's running rewards updated."""
    _apply_actions(s, act)
    _move_bodies(s, p[P_G])
    _keep_rackets_on_court(s, p[P_REST_Y], p[P_WALL_REF])
    for a in range(2):
        _ball_racket_contact(s, ist, a, p)
    r = p[P_BALL_R]
    loser = _point_loser(s, ist, r)
    if loser != -2:
        # -0.01 to the loser, the other's decision reward zeroed.
        if loser == NO_HITTER:
            loser = RIGHT  # the original's "else" branch: nobody counts as the right player
        if loser == RIGHT:
            return True, r0 + REWARD_END, 0.0
        return True, 0.0, r1 + REWARD_END
    r0, r1 = _over_line(s, ist, r, r0, r1)
    # Clamp the ball's velocity.
    s[BVX] = _clip(s[BVX], -MAX_BALL_SPEED, MAX_BALL_SPEED)
    s[BVY] = _clip(s[BVY], -MAX_BALL_SPEED, MAX_BALL_SPEED)
    return False, r0, r1


@njit(cache=True, inline="always")
def _apply_actions(s, act):
    """Jump check, set vx toward the net, net-side limit."""
    for a in range(2):
        side = 1.0 - 2.0 * a
        if _clip(act[a, 1], -1.0, 1.0) > 0.5 and s[RY + a] < JUMP_BELOW_Y:
            s[RVY + a] = JUMP_SPEED
        s[RVX + a] = -side * RUN_SPEED * _clip(act[a, 0], -1.0, 1.0)
        if side * s[RX + a] < NET_LIMIT:
            s[RX + a] = side * NET_LIMIT


@njit(cache=True, inline="always")
def _move_bodies(s, g):
    """Gravity, then move every body (semi-implicit Euler)."""
    s[BVY] += g * DT
    s[BX] += s[BVX] * DT
    s[BY] += s[BVY] * DT
    for a in range(2):
        s[RVY + a] += g * DT
        s[RX + a] += s[RVX + a] * DT
        s[RY + a] += s[RVY + a] * DT


@njit(cache=True, inline="always")
def _keep_rackets_on_court(s, rest_y, wall_ref):
    """Rackets stay above the floor and inside their back wall."""
    for a in range(2):
        side = 1.0 - 2.0 * a
        if s[RY + a] < rest_y:
            s[RY + a] = rest_y
            s[RVY + a] = max(s[RVY + a], 0.0)
        if side * s[RX + a] > wall_ref:
            s[RX + a] = side * wall_ref
            if side * s[RVX + a] > 0.0:
                s[RVX + a] = 0.0


@njit(cache=True, inline="always")
def _point_loser(s, ist, r):
    """Who lost the point, or -2 when it goes on: the floor (the side it landed on), the back
    wall or the net (the last hitter)."""
    bx = s[BX]
    by = s[BY]
    if by - r <= FLOOR_Y and abs(bx) <= FLOOR_HALF_WIDTH:
        return LEFT if bx < 0.0 else RIGHT
    if (bx - r <= -WALL_X or bx + r >= WALL_X) and by - r <= WALL_TOP:
        return ist[LAST]
    qx = _clip(bx, -NET_HALF_WIDTH, NET_HALF_WIDTH)
    qy = _clip(by, NET_BOTTOM, NET_TOP)
    if (bx - qx) ** 2 + (by - qy) ** 2 <= r * r:
        return ist[LAST]
    return -2


@njit(cache=True, inline="always")
def _over_line(s, ist, r, r0, r1):
    """The ball leaving the band |x| < r (y in [-1, 9]) on the other side from where it entered
    pays the left player if it hit last, else the right player; then the last hitter becomes
    the left player (the original's quirk)."""
    bx = s[BX]
    by = s[BY]
    in_band = abs(bx) < r and OVER_BOTTOM <= by <= OVER_TOP
    if ist[BAND] == 0:
        if in_band:
            ist[BAND] = 1 if bx >= 0.0 else -1
    elif not in_band:
        if abs(bx) >= r and (bx > 0.0) != (ist[BAND] > 0):
            if ist[LAST] == LEFT:
                r1 += REWARD_OVER
            else:
                r0 += REWARD_OVER
            ist[LAST] = LEFT
        ist[BAND] = 0
    return r0, r1


@njit(cache=True)
def write_frame(stack_c, s, p):
    """Shift one court's [2, 24] frame stack (oldest to newest) and append the current frame."""
    real_vel = p[P_REAL_VEL] != 0.0
    for a in range(2):
        # Each agent sees itself at negative x with +x toward the net: the right player's x flips.
        m = 2.0 * a - 1.0
        for j in range(16):
            stack_c[a, j] = stack_c[a, j + 8]
        # "+ 0.0" turns the -0.0 of a mirrored zero into 0.0.
        stack_c[a, 16] = m * s[RX + a] + 0.0
        stack_c[a, 17] = s[RY + a]
        stack_c[a, 18] = m * s[RVX + a] + 0.0
        stack_c[a, 19] = s[RVY + a]
        stack_c[a, 20] = m * s[BX] + 0.0
        stack_c[a, 21] = s[BY]
        if real_vel:
            stack_c[a, 22] = m * s[BVX] + 0.0
            stack_c[a, 23] = s[BVY]
        else:
            # The 0.4 build's bug: the "ball velocity" fields repeat the agent's own velocity.
            stack_c[a, 22] = m * s[RVX + a] + 0.0
            stack_c[a, 23] = s[RVY + a]


@njit(cache=True)
def _step_one_court(c, fs, ist, stack, actions, p, obs, rew, term, trunc, final_obs, score, length):
    s = fs[c]
    st = ist[c]
    act = actions[c]
    r0 = 0.0
    r1 = 0.0
    ended = False
    for _ in range(PHYSICS_STEPS):
        ended, r0, r1 = _physics_step(s, st, act, p, r0, r1)
        if ended:
            break
    st[DECISIONS] += 1
    s[RET] += r0
    s[RET + 1] += r1
    rew[c, 0] = r0
    rew[c, 1] = r1
    truncated = (not ended) and st[DECISIONS] >= p[P_MAX_DEC]
    term[c] = ended
    trunc[c] = truncated
    write_frame(stack[c], s, p)
    for a in range(2):
        for j in range(24):
            obs[c, a, j] = stack[c, a, j]
            final_obs[c, a, j] = stack[c, a, j]
    if ended or truncated:
        score[c] = max(s[RET], s[RET + 1])
        length[c] = st[DECISIONS]
        return 1
    score[c] = np.nan
    length[c] = 0
    return 0


@njit(cache=True)
def all_finite(actions):
    for v in actions.ravel():
        if not math.isfinite(v):
            return False
    return True


@njit(cache=True)
def step_courts(fs, ist, stack, actions, p, obs, rew, term, trunc, final_obs, score, length):
    """Advance every court by one decision. Outputs are written into the given arrays.
    Returns the number of courts whose episode ended (terminated or truncated)."""
    n_done = 0
    for c in range(fs.shape[0]):
        n_done += _step_one_court(
            c, fs, ist, stack, actions, p, obs, rew, term, trunc, final_obs, score, length
        )
    return n_done


@njit(cache=True, parallel=True)
def step_courts_parallel(fs, ist, stack, actions, p, obs, rew, term, trunc, final_obs, score,
                         length):
    """As step_courts, with courts spread over threads (each court is independent, so the result
    is identical to the serial kernel)."""
    n_done = 0
    for c in prange(fs.shape[0]):
        n_done += _step_one_court(
            c, fs, ist, stack, actions, p, obs, rew, term, trunc, final_obs, score, length
        )
    return n_done


@njit(cache=True)
def reset_courts(fs, ist, stack, idx, u, p):
    """Serve a new point on courts ``idx`` using uniform draws ``u`` [len(idx), 4]:
    left racket distance, right racket distance, serve side coin, ball distance."""
    for i in range(idx.shape[0]):
        c = idx[i]
        s = fs[c]
        for k in range(N_FLOAT):
            s[k] = 0.0
        s[RX + LEFT] = -(6.0 + 2.0 * u[i, 0])
        s[RX + RIGHT] = 6.0 + 2.0 * u[i, 1]
        s[RY + LEFT] = RACKET_START_Y
        s[RY + RIGHT] = RACKET_START_Y
        serve_side = -1.0 if u[i, 2] < 0.5 else 1.0
        s[BX] = serve_side * (6.0 + 2.0 * u[i, 3])
        s[BY] = SERVE_Y
        ist[c, LAST] = NO_HITTER
        ist[c, BAND] = 0
        ist[c, DECISIONS] = 0
        stack[c, :, :] = 0.0
        write_frame(stack[c], s, p)
