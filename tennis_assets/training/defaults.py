"""The tuned defaults for each algorithm, as measured with bench/bench_time_to_solve.py on the
project's 2-core CPU machine (shared with other work; each bench prints machine and load).

DDPG self-play uses AgentConfig's own defaults (64-64 networks, lr 1e-3, tau 0.05, batch 128,
Gaussian noise 0.3 decaying 0.999 per step to 0.05, pre-tanh penalty 1e-3) with 8 courts and
0.25 updates per player transition: 5/5 seeds reached a greedy mean >= 0.5 over 100 fresh
episodes, median 5.6 s (2.6-14.9 s, 2,000-10,000 updates), and after a 2-minute budget every
seed scored 2.53-2.70 over 500 fresh episodes. The Udacity criterion (last 100 training
episodes >= 0.5) came at a median of 541 episodes.

What was tried for the Udacity criterion (one change at a time, 3 seeds 0-2, ``--udacity``;
episode counts do not depend on the machine's load):
- updates_per_transition 1.0: 306, 269, 273 episodes (median 273; seeds 100-104: 350, 256, 360,
  179, 426, median 350), but 3-7x the updates to the first greedy solve, so the greedy
  time-to-solve grew to a median of 5.4-11.4 s. Not the default: it trades the seconds target
  for episodes. 2.0: 0/3 reached the criterion in 5 minutes.
- on top of 1.0, each alone: evidence-based noise decay (noise_eval_decay 0.5): 292, 289, 572;
  n_step 3: 296, 376, 236; noise floor 0: 309, 311, 279; learning_starts 256: 290, 354, (time
  cap); batch 256: 538 on seed 0. None helped across seeds; they stay options, off.
- updates_per_transition 0.5: 503, 730 (seeds 0, 1).

MADDPG learns per-player actors from half as many samples each. With one critic shared by both
players (``shared_critic``; rows in the player's own view, so both seats are one problem and the
critic sees twice the data) the 2-minute greedy means over 500 fresh episodes went from 1.873,
1.537, 0.662 to 1.801, 2.542, 2.568 (seeds 0-2; lr 2e-3, tau 0.1, the values that had solved
fastest with separate critics), and with self-play's own lr 1e-3 and tau 0.05 to 2.236, 2.471,
2.667: every seed >= 2.0, time to a greedy 0.5 of 5.9, 3.7 and 4.5 s (was a median of 41.7 s).
With twice the data per critic, the slower targets that suit self-play suit MADDPG too.
"""

from __future__ import annotations

from tennis_assets.agents import AgentConfig

from .config import TrainConfig


# Two recipes for DDPG self-play. "seconds" (the default) solves the greedy game in the fewest
# seconds; "episodes" is the one to compare with public solutions' Udacity-criterion episode
# counts: four times the updates per transition (so more learning per training episode, at the
# cost of seconds), then, once a greedy evaluation certifies the target, training episodes are
# played without noise by the best greedy-evaluated weights (see the docstring above).
RECIPES = ("seconds", "episodes")
_EPISODES = ({"noise_solved_scale": 0.0},
             {"updates_per_transition": 1.0, "explore_with_best": True})


def default_configs(algorithm: str = "ddpg",
                    recipe: str = "seconds") -> tuple[AgentConfig, TrainConfig]:
    if recipe not in RECIPES:
        raise ValueError(f"default_configs: unknown recipe {recipe!r}; expected one of {RECIPES}")
    if algorithm == "ddpg":
        agent, train = AgentConfig(algorithm="ddpg"), TrainConfig()
    elif algorithm == "maddpg":
        agent, train = AgentConfig(algorithm="maddpg", shared_critic=True), TrainConfig()
    else:
        raise ValueError(f"default_configs: unknown algorithm {algorithm!r}")
    if recipe == "episodes":
        agent, train = agent.replace(**_EPISODES[0]), train.replace(**_EPISODES[1])
    return agent, train
