#!/usr/bin/env bash
# pip against uv installing what the user-code image installs (torch 2.13.0, then the package
# with its `k8s` extra), as its build does: the public index, the host's wheel folder for the
# CPU torch wheel, no cache, each into a fresh venv. Prints seconds per round and installer,
# the medians, and whether both installed the same packages at the same versions.
#   bash bench/bench_installers.sh [ROUNDS]      (default 2; about 3 minutes a round here)
set -euo pipefail
rounds="${1:-2}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
uv_pin="$(grep -oP '"uv==\K[0-9.]+' "$repo/pyproject.toml")"
wheels="$(pip config get global.find-links 2>/dev/null || echo /opt/wheels)"
work="$(mktemp -d /tmp/bench-installers.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# The host's pip config may add local mirrors and constraints an image build does not see.
export PIP_CONFIG_FILE=/dev/null UV_NO_CACHE=1
index=https://pypi.org/simple
python3.11 -m venv "$work/uvtool"
"$work/uvtool/bin/pip" install -q --no-cache-dir --index-url "$index" "uv==$uv_pin"
echo "machine: $(uname -m), $(nproc) CPUs; uv $uv_pin; pip $(python3.11 -m pip --version | cut -d' ' -f2); load $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A times
for round in $(seq "$rounds"); do
    for tool in pip uv; do
        rm -rf "$work/$tool"; python3.11 -m venv "$work/$tool"
        start=$(date +%s.%N)
        if [ "$tool" = pip ]; then
            "$work/pip/bin/pip" install -q --no-cache-dir --index-url "$index" \
                --find-links "$wheels" "torch==2.13.0" "$repo[k8s]" >"$work/$tool.log" 2>&1
        else
            UV_FIND_LINKS="$wheels" "$work/uvtool/bin/uv" pip install -q --python \
                "$work/uv/bin/python" --index-url "$index" "torch==2.13.0" "$repo[k8s]" \
                >"$work/$tool.log" 2>&1
        fi
        seconds=$(echo "$(date +%s.%N) - $start" | bc)
        times[$tool]+="$seconds "
        printf 'round %d %-3s %6.1f s, load %s\n' "$round" "$tool" "$seconds" \
            "$(cut -d' ' -f1-3 /proc/loadavg)"
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
pip_m=$(echo "${times[pip]}" | median); uv_m=$(echo "${times[uv]}" | median)
printf 'median pip %.1f s, uv %.1f s (ratio %.1f)\n' "$pip_m" "$uv_m" "$(echo "$pip_m / $uv_m" | bc -l)"
freeze() { "$work/$1/bin/python" -m pip freeze 2>/dev/null | sed 's/ @ .*//' | sort; }
if diff <(freeze pip) <(freeze uv) >/dev/null; then
    echo "same $(freeze pip | wc -l) packages at the same versions"
else
    echo "different packages:"; diff <(freeze pip) <(freeze uv) || true
fi
