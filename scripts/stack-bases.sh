#!/usr/bin/env bash
# Stand-ins for the public base images that docker/ names (python:3.11-slim,
# postgres:17.6-bookworm, prom/prometheus:v3.5.0, prom/alertmanager:v0.28.1), for a machine that
# reaches no container registry: a minimal Debian bookworm from the host's Debian mirror
# (mmdebstrap), Debian's own Python 3.11, PostgreSQL, Prometheus and Alertmanager on top
# (docker/podman/Containerfile.*), tagged with the official names in the podman storage of the
# caller ($CONTAINERS_STORAGE_CONF), so the shipped Dockerfiles and compose file build and start
# unchanged. Called by scripts/stack-test.sh:
#
#   bash scripts/stack-bases.sh RUN_DIR
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
run="$1"
t0=$SECONDS

# The mirror apt on the host uses (deb822 or one-line sources), so no other network is needed.
# grep exits 2 when one of the files is missing (a deb822-only machine has no sources.list),
# which pipefail would turn into a silent exit of this script.
mirror="$({ grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' \
    /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true; } |
    awk '{print $2}' | head -n 1)"
mirror="${mirror:-http://deb.debian.org/debian}"

rootfs() {
    local name="$1" packages="$2"
    # No recommends, no documentation: only what the services run.
    if ! mmdebstrap --quiet --variant=minbase --include="$packages" \
            --aptopt='APT::Install-Recommends "false"' \
            --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            bookworm - "$mirror" 2>"$run/logs/rootfs-$name.log" |
            podman import --quiet - "localhost/tennis-assets-standin/rootfs-$name:bookworm" \
                >/dev/null 2>>"$run/logs/rootfs-$name.log"; then
        tail -n 20 "$run/logs/rootfs-$name.log" >&2
        echo "[stack] rootfs $name failed" >&2
        return 1
    fi
    echo "[stack]   rootfs $name at $((SECONDS - t0)) s"
}
rootfs python python3,python3-venv,ca-certificates,passwd & p1=$!
rootfs postgres postgresql-15,passwd & p2=$!
# Prometheus and Alertmanager share one root filesystem: one debootstrap less.
rootfs prometheus prometheus,prometheus-alertmanager,wget & p3=$!
failed=0
for p in $p1 $p2 $p3; do wait "$p" || failed=1; done
[ "$failed" -eq 0 ] || exit 1

# pip inside the project's image builds must trust what the host's pip trusts.
ctx="$run/standin-context"
mkdir -p "$ctx"
cp "$repo"/docker/podman/Containerfile.* "$repo/docker/podman/postgres-entrypoint.sh" "$ctx/"
cert="${PIP_CERT:-$("$run/venv/bin/pip" config get global.cert 2>/dev/null || true)}"
cp "${cert:-/etc/ssl/certs/ca-certificates.crt}" "$ctx/host-ca-certificates.crt"

standin() {
    local file="$1" official="$2"
    if ! podman build --pull=never --network host -f "$ctx/$file" -t "$official" "$ctx" \
            >"$run/logs/standin-$file.log" 2>&1; then
        tail -n 20 "$run/logs/standin-$file.log" >&2
        echo "[stack] stand-in $file failed" >&2
        return 1
    fi
}
standin Containerfile.python docker.io/library/python:3.11-slim & p1=$!
standin Containerfile.postgres docker.io/library/postgres:17.6-bookworm & p2=$!
standin Containerfile.prometheus docker.io/prom/prometheus:v3.5.0 & p3=$!
standin Containerfile.alertmanager docker.io/prom/alertmanager:v0.28.1 & p4=$!
failed=0
for p in $p1 $p2 $p3 $p4; do wait "$p" || failed=1; done
[ "$failed" -eq 0 ] || exit 1
echo "[stack]   stand-ins tagged at $((SECONDS - t0)) s"
