"""The one promotion rule (tennis_assets.workflow.promotion), which only the challenger asset
calls (the promotion sensor only triggers it)."""

import math

from tennis_assets.workflow.promotion import (
    Champion,
    Evidence,
    choose,
    compare_with_champion,
    confirm,
    decide,
    stale,
)

NO_CHAMPION = Champion(None, None)


def ev(partition="baseline", mean=1.0, gates=True, compared=None, champion_mean=None,
       train="run-b"):
    return Evidence(partition, train, mean, gates, compared, champion_mean)


def test_a_broken_candidate_is_never_promoted():
    assert not decide(ev(mean=2.5, gates=False), NO_CHAMPION).promote
    assert decide(ev(mean=0.6), NO_CHAMPION).promote


def test_not_better_than_the_champion_is_a_decision_with_its_figures():
    champion = Champion("3", "run-c")
    d = decide(ev(mean=0.717, compared="3", champion_mean=1.315), champion)
    assert not d.promote and d.reason == "not better than champion v3: 0.717 vs 1.315"
    assert decide(ev(mean=1.4, compared="3", champion_mean=1.315), champion).promote
    # A tie is not better: the champion stays.
    assert not decide(ev(mean=1.315, compared="3", champion_mean=1.315), champion).promote


def test_the_champion_itself_and_stale_comparisons_are_passed_over():
    champion = Champion("3", "run-c")
    assert "already champion" in decide(ev(train="run-c", compared="3", champion_mean=1.0),
                                        champion).reason
    old = decide(ev(mean=2.0, compared="2", champion_mean=1.0), champion)
    assert not old.promote and "judge it again" in old.reason


def test_a_comparison_with_another_champion_is_stale_and_judged_again():
    champion = Champion("3", "run-c")
    assert stale(ev(compared="2", champion_mean=1.0), champion)
    assert stale(ev(), champion)  # judged while there was no champion
    assert not stale(ev(compared="3", champion_mean=1.0), champion)
    assert not stale(ev(compared="2", gates=False), champion)  # broken: never judged again
    assert not stale(ev(train="run-c", compared="2"), champion)  # the champion itself
    assert not stale(ev(compared="2"), NO_CHAMPION)


def test_choose_takes_the_best_accepted_candidate_and_says_why_not_the_others():
    best, passed_over = choose([ev("baseline", 0.9), ev("tuned", 2.0, gates=False, train="t")],
                               NO_CHAMPION)
    assert best.partition == "baseline" and passed_over == {"tuned": "failed a blocking gate"}
    best, passed_over = choose([ev("baseline", 0.9), ev("tuned", 1.2, train="t")], NO_CHAMPION)
    assert best.partition == "tuned" and "0.900 < tuned 1.200" in passed_over["baseline"]
    assert choose([], NO_CHAMPION) == (None, {})


def test_non_finite_scores_never_beat_anything():
    assert not compare_with_champion(math.nan, 0.1).promote


def test_challenger_confirmation():
    ok = confirm(1.2, True, 1.25, target=0.5, margin=0.05)
    assert ok.passed
    worse = confirm(1.0, True, 1.25, target=0.5, margin=0.05)
    assert worse.loads_and_plays and worse.solves and not worse.not_worse
    broken = confirm(1.0, False, None, target=0.5, margin=0.05)
    assert not broken.loads_and_plays and not broken.passed
    assert not confirm(0.3, True, None, target=0.5, margin=0.05).solves
