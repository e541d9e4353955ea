"""The main command's wall time and champion, checkouts side by side on this machine.

    python bench/bench_main_command.py --checkout /path/to/other/clone --checkout . \
        --profile quick --rounds 2

Each round runs ``python -m tennis_assets.pipeline --profile PROFILE`` once per checkout, in
turn (alternating, so load changes hit both alike), each from an empty data folder, with this
interpreter (the checkout's own package is imported: it runs from the checkout's root). Prints
one line per run (seconds, exit code, champion and its greedy mean, which candidates reused an
earlier training, the command's own "took" line, load average before and after) and the median
per checkout.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLEARED = ("DAGSTER_HOME", "MLFLOW_TRACKING_URI", "TENNIS_ASSETS_OPTUNA_STORAGE",
           "TENNIS_ASSETS_ALERT_WEBHOOK")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_once(checkout: Path, profile: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-main-") as data:
        env = {k: v for k, v in os.environ.items() if k not in CLEARED}
        env["TENNIS_ASSETS_HOME"] = data
        before = load()
        log = Path(data) / "main-command.log"
        started = time.monotonic()
        # Output to a file, and the time until the command exits (not until every process
        # that inherited its output closed it).
        with log.open("w") as out:
            rc = subprocess.run([sys.executable, "-m", "tennis_assets.pipeline", "--profile",
                                 profile, *extra], cwd=checkout, env=env, stdout=out,
                                stderr=subprocess.STDOUT, check=False).returncode
        seconds = time.monotonic() - started
        text = log.read_text(errors="replace")
    champion = re.search(r"^champion\s+: (.*)$", text, re.MULTILINE)
    took = re.search(r"^took\s+: (.*)$", text, re.MULTILINE)
    reused = re.findall(r"^\s+(\S+)\s+greedy mean .*; reused the training of run", text,
                        re.MULTILINE)
    return {"checkout": str(checkout), "seconds": seconds, "rc": rc,
            "champion": champion.group(1) if champion else "none",
            "reused": ", ".join(reused) or "none",
            "took": took.group(1) if took else text[-300:], "load_before": before,
            "load_after": load()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", action="append", type=Path, required=True)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("extra", nargs="*", help="more arguments for the main command")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; profile {args.profile}; "
          f"{args.rounds} round(s)", flush=True)
    results: dict[str, list[float]] = {}
    for round_ in range(args.rounds):
        for checkout in args.checkout:
            r = run_once(checkout.resolve(), args.profile, args.extra)
            results.setdefault(r["checkout"], []).append(r["seconds"])
            print(f"round {round_ + 1} {r['checkout']}: {r['seconds']:.1f} s, exit {r['rc']}, "
                  f"load {r['load_before']} -> {r['load_after']}; champion {r['champion']}; "
                  f"reused: {r['reused']}; "
                  f"took {r['took']}", flush=True)
    for checkout, seconds in results.items():
        print(f"median {checkout}: {statistics.median(seconds):.1f} s over {len(seconds)} "
              "run(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
