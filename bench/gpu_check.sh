#!/usr/bin/env bash
# Issue 15's device checks in one run, for a GPU machine whose python3 already holds torch with
# CUDA, numpy, numba, pandas and safetensors (the device tool's H200 machine: nothing to
# install, nothing to download; the project's own pins do not apply there):
#   1. the CUDA-graph tests (the graph's weights follow the eager update's);
#   2. bench_update_impl.py on CUDA: eager, torch.compile and the CUDA graph side by side;
#   3. time-to-solve runs, all at once: the "episodes" recipe's Udacity criterion on CPU learners
#      (one core each: the machine's 16 cores are otherwise idle, so the seconds are a quiet
#      machine's; VARIANT="key=value ... [--train key=value ...]" adds the same runs with those
#      agent [and training] overrides),
#      the default recipe's greedy solve, MADDPG's 2-minute budget, and the GPU learner with the
#      CUDA-graph update.
# PARTS picks among "tests update gpu cpu" (default all four; "cpu" is the CPU-learner runs).
# Everything it prints lands in $OUT (default /tmp/gpu_check).
#
#     OUT=/tmp/gpu_check bash bench/gpu_check.sh
#     PARTS="tests update gpu" bash bench/gpu_check.sh
set -uo pipefail
out="${OUT:-/tmp/gpu_check}"
mkdir -p "$out"
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
py=python3
seeds="${SEEDS:-100 101 102 103 104}"
parts=" ${PARTS:-tests update gpu cpu} "
want() { [[ "$parts" == *" $1 "* ]]; }

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    echo "cpus $(nproc); $(uptime)"
    $py -c "import sys, torch, numpy, numba; print('python', sys.version.split()[0], 'torch',
torch.__version__, 'cuda', torch.version.cuda, 'numpy', numpy.__version__, 'numba',
numba.__version__)"
    # The simulator's kernels compile once per checkout; do it before the parallel runs.
    $py -c "from tennis_assets.sim import VecTennis; VecTennis(num_courts=2).reset()"
} 2>&1 | tee "$out/machine.txt"

if want tests; then
    timeout 180 $py -m pytest -q -p no:cacheprovider tennis_assets_tests/agents/test_learners.py \
        -k "graph" 2>&1 | tail -5 | tee "$out/tests.txt"
fi
if want update; then
    timeout 200 $py bench/bench_update_impl.py --device cuda 2>&1 | tee "$out/update_impl.txt"
fi

tts=bench/bench_time_to_solve.py
runs="$out/runs"
mkdir -p "$runs"
if want gpu; then
    # The GPU learner (CUDA-graph update, the default there), seeds one after another: the
    # episodes recipe to the Udacity criterion, then the default recipe's greedy solve.
    {
        timeout 300 $py $tts --recipe episodes --seeds 5 --first-seed 100 --udacity \
            --set device=cuda
        timeout 120 $py $tts --seeds 5 --first-seed 100 --set device=cuda
    } >"$runs/gpu_learner.txt" 2>&1 &
    # Meanwhile the update benchmark on one of this machine's otherwise idle CPU cores.
    timeout 300 $py bench/bench_update_impl.py --device cpu --blocks 5 \
        >"$runs/update_impl_cpu.txt" 2>&1 &
fi
if want cpu; then
    # CPU learners, one core each (torch_threads 1; the simulator is serial).
    for s in $seeds; do
        timeout 280 $py $tts --recipe episodes --seeds 1 --first-seed "$s" --udacity \
            --set device=cpu >"$runs/episodes_cpu_$s.txt" 2>&1 &
        if [ -n "${VARIANT:-}" ]; then
            # shellcheck disable=SC2086
            timeout 280 $py $tts --recipe episodes --seeds 1 --first-seed "$s" --udacity \
                --set device=cpu $VARIANT >"$runs/variant_cpu_$s.txt" 2>&1 &
        fi
    done
    for s in 0 1 2; do
        timeout 280 $py $tts --algorithm maddpg --seeds 1 --first-seed "$s" --budget \
            --set device=cpu >"$runs/maddpg_budget_cpu_$s.txt" 2>&1 &
    done
    timeout 280 $py $tts --seeds 5 --first-seed 100 --set device=cpu \
        >"$runs/seconds_cpu.txt" 2>&1 &
fi
wait
for f in "$runs"/*.txt; do
    [ -e "$f" ] || continue
    echo "=== $(basename "$f")"
    cat "$f"
done >"$out/time_to_solve.txt"
rm -r "$runs"
cat "$out/time_to_solve.txt"
