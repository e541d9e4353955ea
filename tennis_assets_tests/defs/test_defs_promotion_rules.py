"""Which candidate production_model may promote (the rule behind 'a failing candidate can never
be promoted'), on report documents shaped like evaluation_report's."""

from tennis_assets.defs.assets.production import choose_candidate
from tennis_assets.defs.config import PromotionConfig


def report(mean, gates_passed=True, champion=None, run="run-b", train="mlflow-b"):
    return {"evaluation": {"mean": mean}, "gates_passed": gates_passed,
            "gates": {"solves_tennis": gates_passed}, "dagster_run_id": run,
            "champion": champion, "candidate": {"train_mlflow_run_id": train}}


def test_best_passing_candidate_wins_and_failing_ones_never_do():
    reports = {"baseline": report(0.9), "tuned": report(2.0, gates_passed=False, train="t")}
    (partition, _), passed_over = choose_candidate(reports, PromotionConfig(), None, None)
    assert partition == "baseline"
    assert "failed its gates" in passed_over["tuned"]
    chosen, _ = choose_candidate({"tuned": reports["tuned"]}, PromotionConfig(), None, None)
    assert chosen is None


def test_report_judged_against_a_replaced_champion_is_stale():
    reports = {"baseline": report(1.2, champion={"version": "1", "mean": 1.0}),
               "tuned": report(1.0, champion={"version": "2", "mean": 0.9}, train="t")}
    (partition, _), passed_over = choose_candidate(reports, PromotionConfig(), "2", "other")
    assert partition == "tuned" and "re-evaluate" in passed_over["baseline"]


def test_partition_and_report_run_filters():
    reports = {"baseline": report(1.5, run="r1"), "tuned": report(1.0, run="r2", train="t")}
    (partition, _), _ = choose_candidate(reports, PromotionConfig(partition="tuned"), None, None)
    assert partition == "tuned"
    chosen, passed_over = choose_candidate(
        reports, PromotionConfig(partition="baseline", report_run_id="r9"), None, None)
    assert chosen is None and "r9" in passed_over["baseline"]
