"""One test (or a few) per numbered rule of the tennis spec, set up with VecTennis.set_state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tennis_assets.sim import CourtParams, VecTennis
from tennis_assets.sim import physics as ph

REST_Y = ph.racket_rest_y(55.0)
G = -9.81
DT = 0.02
PARK_LEFT = (-10.8, REST_Y)  # rackets against their back walls, out of the ball's way
PARK_RIGHT = (10.8, REST_Y)
RIGHT, LEFT = 0, 1  # agent indices


def act(right=(0.0, 0.0), left=(0.0, 0.0)) -> np.ndarray:
    return np.array([[right, left]], dtype=np.float64)


STAY = act()


def court(params: CourtParams | None = None, seed: int = 0, **state) -> VecTennis:
    env = VecTennis(1, params or CourtParams(), seed=seed)
    state.setdefault("racket_left", PARK_LEFT)
    state.setdefault("racket_right", PARK_RIGHT)
    state.setdefault("last_hitter", None)
    env.set_state(0, **state)
    return env


def run_until_done(env: VecTennis, action=STAY, limit: int = 300):
    """Returns (last result, decisions taken, snapshots before auto-reset of each decision)."""
    for i in range(1, limit + 1):
        res = env.step(action)
        if res.terminated[0] or res.truncated[0]:
            return res, i
    raise AssertionError(f"no ending within {limit} decisions")


# ---------------------------------------------------------------- endings and their rewards
@pytest.mark.parametrize(
    "ball, expected",
    [
        ((-5.0, -2.6, 0.0, -5.0), [0.0, -0.01]),  # left floor: -0.01 to the left player
        ((5.0, -2.6, 0.0, -5.0), [-0.01, 0.0]),  # right floor: -0.01 to the right player
    ],
)
def test_floor_endings(ball, expected):
    res = court(ball=ball).step(STAY)
    assert res.terminated[0] and not res.truncated[0]
    np.testing.assert_allclose(res.rewards[0], expected, atol=1e-7)


@pytest.mark.parametrize("last_hitter, loser", [("right", RIGHT), ("left", LEFT), (None, RIGHT)])
@pytest.mark.parametrize(
    "ball",
    [
        (-11.5, 3.0, -9.0, 0.0),  # left back wall
        (11.5, 3.0, 9.0, 0.0),  # right back wall
        (0.8, -2.0, -9.0, 0.0),  # net, from the right
        (-0.8, -2.0, 9.0, 0.0),  # net, from the left
    ],
)
def test_wall_and_net_endings_charge_last_hitter(ball, last_hitter, loser):
    res = court(ball=ball, last_hitter=last_hitter).step(STAY)
    assert res.terminated[0]
    expected = [0.0, 0.0]
    expected[loser] = -0.01
    np.testing.assert_allclose(res.rewards[0], expected, atol=1e-7)
    assert res.episode_score[0] == pytest.approx(0.0)


def _kernel_step(ball, last, r0, r1):
    s = np.zeros(ph.N_FLOAT)
    s[[ph.BX, ph.BY, ph.BVX, ph.BVY]] = ball
    s[[ph.RX + LEFT, ph.RY + LEFT]] = PARK_LEFT
    s[[ph.RX + RIGHT, ph.RY + RIGHT]] = PARK_RIGHT
    ist = np.zeros(ph.N_INT, dtype=np.int64)
    ist[ph.LAST] = last
    return ph._physics_step(s, ist, np.zeros((2, 2)), ph.params_array(CourtParams()), r0, r1)


def test_terminal_contact_zeroes_the_other_players_decision_reward():
    # A crossing earlier in the same decision gave the right player +0.1; the ball then lands on
    # the left floor: the left player gets -0.01 and the right player's +0.1 is wiped (original).
    ended, r0, r1 = _kernel_step((-5.0, -2.74, 0.0, -5.0), ph.LEFT, 0.1, 0.0)
    assert ended and r0 == 0.0 and r1 == pytest.approx(-0.01)
    # The loser's own earlier reward is kept and the -0.01 is added to it.
    ended, r0, r1 = _kernel_step((11.75, 3.0, 9.0, 0.0), ph.RIGHT, 0.1, 0.1)
    assert ended and r0 == pytest.approx(0.09) and r1 == 0.0


# ---------------------------------------------------------------- the over line
@pytest.mark.parametrize(
    "ball, last_hitter, expected",
    [
        ((0.3, 3.0, -9.0, 0.0), "right", [0.1, 0.0]),  # right player's shot crosses to the left
        ((-0.3, 3.0, 9.0, 0.0), "left", [0.0, 0.1]),  # left player's shot crosses to the right
        ((0.3, 3.0, -9.0, 0.0), None, [0.1, 0.0]),  # nobody hit: the right player is credited
        ((-0.3, 3.0, 9.0, 0.0), None, [0.1, 0.0]),
    ],
)
def test_crossing_reward(ball, last_hitter, expected):
    env = court(ball=ball, last_hitter=last_hitter)
    res = env.step(STAY)  # 5 steps of 0.18: the ball leaves the band |x| < 0.5 on the far side
    assert not res.terminated[0]
    np.testing.assert_allclose(res.rewards[0], expected, atol=1e-7)
    assert env.snapshot()["last_hitter"][0] == ph.LEFT  # quirk: reset to the left player


def test_after_a_crossing_the_left_player_is_charged_for_the_wall():
    # Right player's high shot crosses (+0.1 right), then flies into the left back wall. The
    # last hitter is now the left player (quirk), so the left player gets the -0.01.
    env = court(ball=(0.3, 8.0, -9.0, 0.0), last_hitter="right")
    first = env.step(STAY)
    np.testing.assert_allclose(first.rewards[0], [0.1, 0.0], atol=1e-7)
    res, _ = run_until_done(env)
    final_ball_x = res.final_obs[0, LEFT, 20]
    assert final_ball_x < -11.0  # ended at the left back wall, not on a floor
    np.testing.assert_allclose(res.rewards[0], [0.0, -0.01], atol=1e-7)
    assert res.episode_score[0] == pytest.approx(0.1)


def test_leaving_the_band_on_the_entry_side_is_not_a_crossing():
    env = court(ball=(0.3, 3.0, 9.0, 0.0), last_hitter="right")
    res = env.step(STAY)
    np.testing.assert_allclose(res.rewards[0], [0.0, 0.0])
    assert env.snapshot()["last_hitter"][0] == ph.RIGHT


# ---------------------------------------------------------------- ball-racket contact
def _standing_return(agent: int):
    side = 1.0 - 2.0 * agent
    ball_x = side * 7.0
    state = {"ball": (ball_x, 6.0), "racket_left": PARK_LEFT, "racket_right": PARK_RIGHT}
    state["racket_left" if agent == LEFT else "racket_right"] = (ball_x + side * 0.3, REST_Y)
    env = court(**state)
    hit_decision = None
    for i in range(1, 40):
        res = env.step(STAY)
        if res.terminated[0]:
            return hit_decision, i
        if hit_decision is None and env.snapshot()["last_hitter"][0] == agent:
            hit_decision = i
    raise AssertionError("no ending")


@pytest.mark.parametrize("agent", [RIGHT, LEFT])
def test_racket_contact_sets_last_hitter(agent):
    hit_decision, end = _standing_return(agent)
    assert hit_decision is not None and hit_decision < end


def test_standing_racket_cannot_return_the_ball_over_the_net():
    # Spec reference: the ball leaves the 55-degree face at about (7.1, 1.2) and falls short.
    env = court(ball=(-7.0, 6.0), racket_left=(-7.3, REST_Y))
    crossed = False
    leave_v = None
    for i in range(1, 40):
        res = env.step(STAY)
        if res.terminated[0]:
            break
        s = env.snapshot()
        crossed |= s["ball_x"][0] > 0.0
        if leave_v is None and s["last_hitter"][0] == LEFT:
            leave_v = (s["ball_vx"][0], s["ball_vy"][0])
    assert leave_v is not None and 6.5 < leave_v[0] < 8.0 and abs(leave_v[1]) < 2.0
    assert not crossed
    np.testing.assert_allclose(res.rewards[0], [0.0, -0.01], atol=1e-7)


def test_swing_toward_the_net_sends_the_ball_at_the_clamp_and_over_the_net():
    env = court(ball=(-7.0, 6.0), racket_left=(-7.0 - 0.5 - 1.8 + 0.187, REST_Y))
    hit = t_hit = y_hit = crossing_y = landing = None
    for i in range(1, 80):
        s = env.snapshot()
        swing = hit is None and s["ball_y"][0] < 1.0
        res = env.step(act(left=(0.6 if swing else 0.0, 0.0)))
        assert not res.terminated[0]
        s = env.snapshot()
        if hit is None and s["last_hitter"][0] == LEFT:
            hit, t_hit, y_hit = (s["ball_vx"][0], s["ball_vy"][0]), i, s["ball_y"][0]
        if hit is not None and crossing_y is None and s["ball_x"][0] > 0.0:
            crossing_y = s["ball_y"][0]
        if crossing_y is not None and s["ball_y"][0] <= y_hit:
            landing = i  # back down at the height it was hit from, on the far side
            break
    assert hit[0] == pytest.approx(9.0) and hit[1] > 7.5  # leaves at about (9, 9), clamped
    assert crossing_y > -1.0 + 2.0  # clears the net (top at y = -1) by about 3
    assert 1.6 <= (landing - t_hit) * 0.1 <= 2.2  # flies about 1.9 s


def _contact(speed: float, racket_v=(0.0, 0.0)):
    p = ph.params_array(CourtParams())
    t = math.radians(55.0)
    n = np.array([math.cos(t), math.sin(t)])  # left player's face normal
    ref = np.array([-7.0, REST_Y])
    face_centre = ref + np.array([-0.287, -0.410]) + 0.55 * n
    s = np.zeros(ph.N_FLOAT)
    s[[ph.BX, ph.BY]] = face_centre + (0.5 - 0.01) * n  # 0.01 of overlap
    s[[ph.BVX, ph.BVY]] = -speed * n
    s[[ph.RX + LEFT, ph.RY + LEFT]] = ref
    s[[ph.RVX + LEFT, ph.RVY + LEFT]] = racket_v
    ist = np.array([ph.NO_HITTER, 0, 0], dtype=np.int64)
    ph._ball_racket_contact(s, ist, LEFT, p)
    ball_vn = s[[ph.BVX, ph.BVY]] @ n
    racket_vn = s[[ph.RVX + LEFT, ph.RVY + LEFT]] @ n
    gap = (s[[ph.BX, ph.BY]] - face_centre) @ n
    return ball_vn, racket_vn, gap, ist[ph.LAST]


def test_contact_impulse_and_bounce_threshold():
    # Elastic above the threshold: the ball's velocity change is 2*4/4.75 = 1.684 x the
    # relative normal speed.
    ball_vn, racket_vn, gap, last = _contact(4.0)
    assert (ball_vn + 4.0) / 4.0 == pytest.approx(2 * 4.0 / 4.75)
    assert ball_vn - racket_vn == pytest.approx(4.0)  # e = 1: relative speed reversed
    assert gap == pytest.approx(0.5)  # bodies separated
    assert last == LEFT
    # Below 2: no bounce, the bodies just stop approaching (move together along the normal).
    ball_vn, racket_vn, _, _ = _contact(1.5)
    assert ball_vn == pytest.approx(racket_vn)
    assert ball_vn == pytest.approx(-1.5 * 0.75 / 4.75)
    # Separating bodies get no impulse (but the touch still counts as a hit).
    ball_vn, racket_vn, _, last = _contact(-3.0)
    assert ball_vn == pytest.approx(3.0) and racket_vn == 0.0 and last == LEFT


def test_ball_velocity_is_clamped():
    env = court(ball=(-3.0, 5.0, 30.0, -50.0))
    env.step(STAY)
    s = env.snapshot()
    assert s["ball_vx"][0] == 9.0 and s["ball_vy"][0] == -9.0
    env = court(ball=(3.0, 0.0, -40.0, 40.0))
    env.step(STAY)
    s = env.snapshot()
    # Clamped at step 1, then 4 steps of gravity.
    assert s["ball_vx"][0] == -9.0 and s["ball_vy"][0] == pytest.approx(9.0 + 4 * G * DT)


# ---------------------------------------------------------------- rackets and actions
def test_jump_when_a1_above_half_and_racket_low():
    env = court(ball=(0.0, 8.0), racket_left=(-7.0, REST_Y), racket_right=(7.0, REST_Y))
    obs = env.step(act(right=(0.0, 0.51), left=(0.0, 1.0))).obs
    # Steps 1-3 start below y = -1.5 and set vy = 7; steps 4-5 are free flight.
    y, vy = REST_Y, 0.0
    for _ in range(5):
        if y < -1.5:
            vy = 7.0
        vy += G * DT
        y += vy * DT
    assert y > -1.5
    for agent in (RIGHT, LEFT):
        assert obs[0, agent, 17] == pytest.approx(y, abs=1e-5)
        assert obs[0, agent, 19] == pytest.approx(vy, abs=1e-5)


def test_no_jump_at_a1_half_or_when_airborne():
    env = court(ball=(0.0, 8.0), racket_left=(-7.0, REST_Y), racket_right=(7.0, -1.0))
    obs = env.step(act(right=(0.0, 1.0), left=(0.0, 0.5))).obs
    assert obs[0, LEFT, 17] == pytest.approx(REST_Y, abs=1e-5) and obs[0, LEFT, 19] == 0.0
    # Airborne above -1.5: a1 does nothing, gravity only.
    assert obs[0, RIGHT, 19] == pytest.approx(5 * G * DT, abs=1e-5)


@pytest.mark.parametrize("a0", [0.5, -0.5, 1.0, 3.0])
def test_a0_sets_velocity_toward_the_net_for_both_players(a0):
    env = court(ball=(0.0, 8.0), racket_left=(-7.0, REST_Y), racket_right=(7.0, REST_Y))
    obs = env.step(act(right=(a0, 0.0), left=(a0, 0.0))).obs
    v = 30.0 * min(a0, 1.0)  # actions are clipped to [-1, 1]
    for agent in (RIGHT, LEFT):
        assert obs[0, agent, 18] == pytest.approx(v)  # own vx in the mirrored view
        assert obs[0, agent, 16] == pytest.approx(-7.0 + v * 0.1, abs=1e-5)
    s = env.snapshot()
    assert s["racket_vx"][0, LEFT] == pytest.approx(v)
    assert s["racket_vx"][0, RIGHT] == pytest.approx(-v)


def test_net_side_limit():
    env = court(ball=(0.0, 8.0), racket_left=(-3.0, REST_Y), racket_right=(3.0, REST_Y))
    xs = []
    for _ in range(4):
        obs = env.step(act(right=(1.0, 0.0), left=(1.0, 0.0))).obs
        xs.append(obs[0, :, 16].copy())
        assert np.all(obs[0, :, 18] == 30.0)  # velocity kept
    # Moved back to -1 at the start of each physics step, then one step of 0.6: peaks at -0.4.
    np.testing.assert_allclose(xs[-1], [-0.4, -0.4], atol=1e-5)
    assert max(x.max() for x in xs) <= -0.4 + 1e-5


def test_back_wall_stops_racket_and_resting_height():
    env = court(ball=(0.0, 8.0), racket_left=(-7.0, -1.5), racket_right=(7.0, -1.5))
    for _ in range(5):
        obs = env.step(act(right=(-1.0, 0.0), left=(-1.0, 0.0))).obs
    np.testing.assert_allclose(obs[0, :, 16], [-10.8996, -10.8996], atol=2e-4)
    np.testing.assert_allclose(obs[0, :, 17], [-1.8517, -1.8517], atol=1e-4)


# ---------------------------------------------------------------- time, cap, observations
def test_one_decision_is_five_physics_steps_of_20ms():
    env = court(ball=(-7.0, 6.0))
    env.step(STAY)
    s = env.snapshot()
    # Semi-implicit Euler: y drops by g*dt^2*(1+2+3+4+5).
    assert s["ball_y"][0] == pytest.approx(6.0 + G * DT * DT * 15)
    assert s["ball_vy"][0] == pytest.approx(5 * G * DT)


def test_decision_cap_is_truncation():
    env = court(CourtParams(max_decisions=5), ball=(-7.0, 6.0))
    for i in range(4):
        res = env.step(STAY)
        assert not (res.terminated[0] or res.truncated[0])
    res = env.step(STAY)
    assert res.truncated[0] and not res.terminated[0] and res.episode_length[0] == 5

    env = court(ball=(-7.0, 6.0), decisions=998)
    assert not env.step(STAY).truncated[0]
    res = env.step(STAY)
    assert res.truncated[0] and not res.terminated[0] and res.episode_length[0] == 1000


def test_ball_ending_on_the_last_decision_is_termination_not_truncation():
    env = court(ball=(-5.0, -2.6, 0.0, -5.0), decisions=999)
    res = env.step(STAY)
    assert res.terminated[0] and not res.truncated[0]


def test_frame_stacking():
    env = VecTennis(3, seed=1)
    o0 = env.reset()
    assert o0.dtype == np.float32 and o0.shape == (3, 2, 24)
    assert np.all(o0[:, :, :16] == 0.0) and np.all(o0[:, :, 16] != 0.0)  # own x is never 0
    # Move the rackets so the frames differ from one another.
    a = np.tile(np.array([[0.3, 0.0], [0.6, 0.0]]), (3, 1, 1))
    o1 = env.step(a).obs
    o2 = env.step(a).obs
    np.testing.assert_array_equal(o1[:, :, :8], 0.0)
    np.testing.assert_array_equal(o1[:, :, 8:16], o0[:, :, 16:])
    np.testing.assert_array_equal(o2[:, :, :8], o0[:, :, 16:])
    np.testing.assert_array_equal(o2[:, :, 8:16], o1[:, :, 16:])
    assert not np.array_equal(o2[:, :, 16:], o1[:, :, 16:])


@pytest.mark.parametrize("real", [False, True])
def test_mirrored_views_of_a_symmetric_state_are_equal(real):
    env = VecTennis(1, CourtParams(real_ball_velocity=real), seed=0)
    obs = env.set_state(
        0, ball=(0.0, 4.0, 0.0, -2.0), racket_left=(-7.0, -1.6, 3.0, 1.0),
        racket_right=(7.0, -1.6, -3.0, 1.0)
    )
    np.testing.assert_array_equal(obs[RIGHT], obs[LEFT])
    assert obs[LEFT, 16] == -7.0 and obs[LEFT, 18] == 3.0


@pytest.mark.parametrize("real", [False, True])
def test_observation_fields_and_velocity_quirk(real):
    env = VecTennis(1, CourtParams(real_ball_velocity=real), seed=0)
    ball = (2.0, 3.0, -4.0, 5.0)
    rl, rr = (-6.0, -1.7, 6.0, 0.5), (7.5, -1.8, -12.0, 0.25)
    obs = env.set_state(0, ball=ball, racket_left=rl, racket_right=rr)
    f_left, f_right = obs[LEFT, 16:], obs[RIGHT, 16:]
    own_left = [rl[0], rl[1], rl[2], rl[3]]
    own_right = [-rr[0], rr[1], -rr[2], rr[3]]  # x components flipped for the right player
    np.testing.assert_allclose(f_left[:6], own_left + [ball[0], ball[1]])
    np.testing.assert_allclose(f_right[:6], own_right + [-ball[0], ball[1]])
    if real:
        np.testing.assert_allclose(f_left[6:], [ball[2], ball[3]])
        np.testing.assert_allclose(f_right[6:], [-ball[2], ball[3]])
    else:  # the 0.4 build repeats the agent's own velocity
        np.testing.assert_allclose(f_left[6:], own_left[2:])
        np.testing.assert_allclose(f_right[6:], own_right[2:])


# ---------------------------------------------------------------- environment parameters
def _unhit_serve_length(params: CourtParams) -> int:
    return run_until_done(court(params, ball=(-7.0, 6.0)))[1]


def test_environment_parameters_change_the_physics():
    base = _unhit_serve_length(CourtParams())
    assert base == 15
    assert _unhit_serve_length(CourtParams(gravity=-19.62)) < base
    assert _unhit_serve_length(CourtParams(ball_scale=2.0)) < base
    # The racket angle moves the resting height (the tilted rectangle's lowest corner).
    env = court(CourtParams(racket_angle_deg=40.0), ball=(0.0, 8.0), racket_left=(-7.0, -1.5))
    obs = env.step(STAY).obs
    for _ in range(5):
        obs = env.step(STAY).obs
    assert obs[0, LEFT, 17] == pytest.approx(ph.racket_rest_y(40.0), abs=1e-5)
    assert abs(ph.racket_rest_y(40.0) - REST_Y) > 0.05


def test_larger_ball_reaches_a_racket_the_default_ball_misses():
    # The racket's rightmost corner is at x = -7 - 0.287 + 1.0835 = -6.20; a ball falling at
    # x = -5.5 misses it with radius 0.5 but touches it with radius 1.0.
    def touched(scale):
        env = court(CourtParams(ball_scale=scale), ball=(-5.5, 6.0), racket_left=(-7.0, REST_Y))
        for _ in range(40):
            if env.step(STAY).terminated[0]:
                return False
            if env.snapshot()["last_hitter"][0] == LEFT:
                return True
        raise AssertionError("no ending")

    assert not touched(1.0)
    assert touched(2.0)
