"""How much training a kill -9 loses: `tennis-assets train --seconds 60` killed at random moments.

    python bench/bench_kill9.py [--kills 5] [--interval 10] [--seed 0]

Each kill lands at a uniformly random moment between 15 s and 55 s after the command started.
Lost training is the wall time between the last resume checkpoint that survived (its file's
modification time, written atomically at the end of the save) and the kill; the checkpoint is
then loaded to show it is whole. Prints each kill and the median and worst loss.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--interval", type=float, default=10.0,
                    help="checkpoint_every_seconds (the default is 10)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from tennis_assets.training.checkpoints import read_metadata

    rng = random.Random(args.seed)
    losses = []
    for i in range(args.kills):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            proc = subprocess.Popen(
                [sys.executable, "-m", "tennis_assets.cli", "train", "--seconds", "60",
                 "--out", str(out), "--no-progress", "--no-gif", "--seed", str(i),
                 "--set", f"checkpoint_every_seconds={args.interval}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            at = rng.uniform(15.0, 55.0)
            time.sleep(at)
            os.kill(proc.pid, signal.SIGKILL)
            killed = time.time()
            proc.wait()
            resume = out / "resume.safetensors"
            if not resume.exists():
                print(f"kill {i + 1} at {at:.1f} s: no checkpoint on disk", flush=True)
                losses.append(float("inf"))
                continue
            progress = read_metadata(resume)["progress"]
            lost = killed - resume.stat().st_mtime
            losses.append(lost)
            print(f"kill {i + 1} at {at:.1f} s after start: last save {lost:.1f} s before the "
                  f"kill, at {progress['seconds']:.1f} s of training ({progress['updates']} "
                  f"updates); checkpoint loads", flush=True)
    print(f"\nlost training over {len(losses)} kills (interval {args.interval:g} s): median "
          f"{statistics.median(losses):.1f} s, worst {max(losses):.1f} s")


if __name__ == "__main__":
    main()
