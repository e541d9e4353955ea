#!/usr/bin/env bash
# The compose stack of docker/ for real, on a machine without Docker or a container registry
# (the CI machines of this project): podman from Debian's packages, stand-ins for the public base
# images, every image of docker/ built, the stack started from docker/docker-compose.yml, and
# scripts/stack_drive.py driving it as a user would. Prints each phase's time; fails on any
# unhealthy service; leaves no container, image, volume, network or process behind.
#
#   bash scripts/stack-test.sh        (as root; .ci/run calls it after the test suite)
#
# Everything lives in a fresh folder under /var/tmp (podman's storage, network configuration,
# API socket, logs) and is deleted at the end, so each run builds from nothing: its time is what
# CI pays. STACK_KEEP=1 keeps the stack up and the folder after the drive, for a person to look.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
t_start=$SECONDS
phase_t=$SECONDS
phase_name=""
phase() {
    local now=$SECONDS
    [ -z "$phase_name" ] || printf '[stack] phase %-10s %4d s\n' "$phase_name" $((now - phase_t))
    phase_name="$1"; phase_t=$now
    [ -z "$1" ] || echo "[stack] $1 ..."
}
die() { echo "[stack] FAILED: $*" >&2; exit 1; }

# --- engine ---------------------------------------------------------------------------------
phase engine
packages=(podman runc netavark aardvark-dns iptables fuse-overlayfs slirp4netns uidmap buildah
          mmdebstrap)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "[stack] installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi
[ "$(id -u)" -eq 0 ] || die "run as root: rootful podman is what the daemon's socket needs here"

run="$(mktemp -d /var/tmp/tennis-stack.XXXXXX)"
mkdir -p "$run/logs" "$run/networks" "$run/tmp"
# The repository's engine settings plus this run's own paths (appended to its [engine] table).
{ cat docker/podman/containers.conf
  printf 'tmp_dir = "%s/tmp"\n\n[network]\nnetwork_config_dir = "%s/networks"\n' "$run" "$run"
} > "$run/containers.conf"
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/storage"\nrunroot = "%s/runroot"\n' \
    "$run" "$run" > "$run/storage.conf"
export CONTAINERS_CONF="$run/containers.conf" CONTAINERS_STORAGE_CONF="$run/storage.conf"

service_pid=""
teardown() {
    local rc=$?
    set +e
    if [ "${STACK_KEEP:-}" = 1 ] && [ "$rc" -eq 0 ]; then
        echo "[stack] STACK_KEEP=1: stack left up; CONTAINERS_CONF=$CONTAINERS_CONF" \
             "CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF; podman service pid $service_pid"
        return
    fi
    phase teardown
    if [ -x "$run/venv/bin/podman-compose" ]; then
        compose down -v -t 5 >"$run/logs/down.log" 2>&1
    fi
    podman rm -af -t 2 >/dev/null 2>&1          # run containers, started outside compose
    podman volume rm -af >/dev/null 2>&1
    podman network rm -f tennis_assets >/dev/null 2>&1
    if [ -n "$service_pid" ]; then
        kill "$service_pid" 2>/dev/null; wait "$service_pid" 2>/dev/null
    fi
    podman system reset -f >/dev/null 2>&1      # images and layers of this run's storage
    # Whatever still runs from this run's folder (conmon, aardvark-dns) is this run's.
    local left
    left="$(pgrep -f "$run" || true)"
    if [ -n "$left" ]; then
        echo "[stack] stopping leftover processes: $left"
        kill $left 2>/dev/null; sleep 1
    fi
    grep -q " $run" /proc/mounts && awk -v r="$run" '$2 ~ "^"r {print $2}' /proc/mounts |
        sort -r | xargs -r umount -l
    rm -rf "$run"
    local leftover=""
    [ -z "$(pgrep -f "$run" || true)" ] || leftover+=" processes"
    ! grep -q " $run" /proc/mounts || leftover+=" mounts"
    [ ! -e "$run" ] || leftover+=" files"
    phase ""
    if [ -n "$leftover" ]; then
        echo "[stack] FAILED: teardown left$leftover behind" >&2; rc=1
    fi
    echo "[stack] total $((SECONDS - t_start)) s; $([ "$rc" -eq 0 ] && echo PASSED || echo FAILED)"
    exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

python3 -m venv "$run/venv"
"$run/venv/bin/pip" install --quiet podman-compose==1.6.0

# The Docker API for DockerRunLauncher, mounted into the webserver and the daemon by
# docker/docker-compose.podman.yml. Started here, stopped by its pid in teardown.
export STACK_ENGINE_SOCKET="$run/podman.sock"
podman system service --time=0 "unix://$STACK_ENGINE_SOCKET" >"$run/logs/podman-service.log" 2>&1 &
service_pid=$!
for _ in $(seq 50); do [ -S "$STACK_ENGINE_SOCKET" ] && break; sleep 0.2; done
[ -S "$STACK_ENGINE_SOCKET" ] || die "podman system service did not open $STACK_ENGINE_SOCKET"
# Run containers of tune_in_containers mount the socket too (docker-compose.yml's container
# context, DOCKER_SOCKET) and start their steps through it as the image's user, who joins the
# socket's group (DOCKER_GID, 0 by default): podman creates it root-only.
chmod 660 "$STACK_ENGINE_SOCKET"
export DOCKER_SOCKET="$STACK_ENGINE_SOCKET"

# --- stand-in base images -------------------------------------------------------------------
phase bases
bash scripts/stack-bases.sh "$run"

# --- the project's images, in parallel --------------------------------------------------------
phase images
# pip inside the builds sees the host's wheel folder (the CPU torch wheel); the index is the
# public one, over the host's network.
wheels="${PIP_FIND_LINKS:-$("$run/venv/bin/pip" config get global.find-links 2>/dev/null || true)}"
[ -d "$wheels" ] || { wheels="$run/no-wheels"; mkdir -p "$wheels"; }
build() {
    local name="$1"; shift
    if ! podman build --pull=never --network host --volume "$wheels:/opt/wheels:ro" \
            "$@" . >"$run/logs/build-$name.log" 2>&1; then
        tail -n 40 "$run/logs/build-$name.log" >&2
        echo "[stack] image $name did not build" >&2
        return 1
    fi
    echo "[stack]   $name built at $((SECONDS - phase_t)) s"
}
build dagster -f docker/Dockerfile.dagster --ignorefile docker/Dockerfile.dagster.dockerignore \
    -t tennis-assets/dagster:1.13.27 &
p1=$!
build optuna-dashboard -f docker/Dockerfile.optuna_dashboard \
    --ignorefile docker/Dockerfile.optuna_dashboard.dockerignore \
    -t tennis-assets/optuna-dashboard:0.21.0 &
p2=$!
# jupyter extends the user_code stage: built after it, it reuses its layers.
{ build user-code -f docker/Dockerfile.user_code --ignorefile docker/Dockerfile.user_code.dockerignore \
      --target user_code --build-arg TORCH_INDEX_URL=https://pypi.org/simple \
      -t tennis-assets/user-code:0.1.0 &&
  build jupyter -f docker/Dockerfile.user_code --ignorefile docker/Dockerfile.user_code.dockerignore \
      --target jupyter --build-arg TORCH_INDEX_URL=https://pypi.org/simple \
      -t tennis-assets/jupyter:0.1.0; } &
p3=$!
failed=0
for p in $p1 $p2 $p3; do wait "$p" || failed=1; done
[ "$failed" -eq 0 ] || die "an image did not build (logs above)"
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep tennis-assets/ | sed 's/^/[stack]   /'

# --- the stack --------------------------------------------------------------------------------
phase up
# Throwaway credentials of this run; never printed (logs shown on failure have them masked).
secret() { python3 -c 'import secrets; print(secrets.token_hex(16))'; }
export POSTGRES_USER=tennis POSTGRES_PASSWORD="$(secret)" JUPYTER_TOKEN="$(secret)" \
    GRAFANA_ADMIN_PASSWORD="$(secret)" TENNIS_ASSETS_PROFILE=quick
# The alert webhook (docker/podman/alert_receiver.py): Dagster's alerts and Alertmanager's.
export TENNIS_ASSETS_ALERT_WEBHOOK="http://alert-receiver:9000/hooks/$(secret)"
masked() { sed -e "s/$POSTGRES_PASSWORD/***/g" -e "s/$JUPYTER_TOKEN/***/g" \
                -e "s/${TENNIS_ASSETS_ALERT_WEBHOOK##*/}/***/g"; }
compose() {
    "$run/venv/bin/podman-compose" --in-pod false -p tennis-assets \
        -f docker/docker-compose.yml -f docker/docker-compose.podman.yml \
        -f docker/podman/docker-compose.alert-receiver.yml "$@"
}
# podman-compose ignores `condition: service_healthy` and podman without systemd runs no health
# checks by itself: start the services in the order of their depends_on, and poll each one's
# health check until it passes. Grafana is not started: it has no Debian package to stand in.
wait_healthy() {
    local deadline=$((SECONDS + $1)); shift
    local pending=("$@") still name cid
    while [ "${#pending[@]}" -gt 0 ]; do
        still=()
        for name in "${pending[@]}"; do
            cid="$(podman ps -aq --filter "label=com.docker.compose.service=$name")"
            if [ -n "$cid" ] && podman healthcheck run "$cid" >/dev/null 2>&1; then
                echo "[stack]   $name healthy at $((SECONDS - phase_t)) s"
            else
                still+=("$name")
            fi
        done
        pending=("${still[@]}")
        [ "${#pending[@]}" -gt 0 ] || break
        if [ "$SECONDS" -ge "$deadline" ]; then
            for name in "${pending[@]}"; do
                cid="$(podman ps -aq --filter "label=com.docker.compose.service=$name")"
                echo "[stack] $name is not healthy: $(podman inspect -f '{{.State.Status}}' "$cid" 2>&1)" >&2
                podman logs --tail 40 "$cid" 2>&1 | masked >&2
            done
            die "unhealthy: ${pending[*]}"
        fi
        sleep 2
    done
}
up() { compose up -d --no-build --no-deps "$@" >>"$run/logs/up.log" 2>&1 ||
       { masked < "$run/logs/up.log" | tail -n 30 >&2; die "compose up $*"; }; }
up postgres alertmanager alert-receiver prometheus
wait_healthy 120 postgres
up mlflow optuna-dashboard
wait_healthy 180 mlflow optuna-dashboard alertmanager alert-receiver prometheus
up user_code policy-server jupyter
wait_healthy 240 user_code policy-server jupyter
up webserver daemon
wait_healthy 180 webserver daemon

# --- as a user would ------------------------------------------------------------------------
phase drive
# The driver's clients (dagster-graphql, docker) are the project's own dependencies.
source "$repo/scripts/setup.sh"
"$repo/.venv/bin/python" scripts/stack_drive.py
phase ""
