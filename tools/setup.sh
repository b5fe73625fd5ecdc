#!/usr/bin/env bash
# Prepare a fresh Debian 12 machine (as root) to run meshd, its lab and its tests.
# Idempotent: safe to run again, also while dockerd from an earlier run is up.
#
#   1. apt packages: docker.io iproute2 nftables busybox-static iperf3 prometheus (promtool) chromium ...
#   2. dockerd: started in the background when `docker info` fails
#      (log: /var/log/meshd-dockerd.log), waited for (bounded)
#   3. the venv <repo>/.venv with `pip install -e '.[test,bench]'`
#   4. the test image meshd-busybox:latest (docker import of busybox-static)
#
# With --bench it also installs what the benchmark report compares meshd with
# (apt serf, etcd-server, etcd-client): `python -m tools.bench.report`.
#
# Environment: PYTHON (interpreter for the venv, default python3 if >= 3.11),
#              DOCKERD_WAIT_S (default 60).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOCKERD_LOG=/var/log/meshd-dockerd.log
DOCKERD_WAIT_S="${DOCKERD_WAIT_S:-60}"
APT_PACKAGES=(
    docker.io containerd runc tini # container engine (dockerd + its runtime)
    iproute2 nftables              # lab namespaces, bridges, partitions; netops
    busybox-static                 # the test image's only binary
    iperf3 iputils-ping procps     # measuring and probing inside the lab
    prometheus                     # promtool: the tests check the metrics exposition with it
    chromium                       # headless browser: the web view's test (tests/e2e/test_web.py)
    dnsmasq-base                   # the lab's DHCP server for dhcp networks (the binary only: no service)
    podman containernetworking-plugins # the CNI plugin's test runs real podman (CNI backend)
    python3 python3-venv python3-pip
    ca-certificates git
)

BENCH_PACKAGES=(serf etcd-server etcd-client) # the report's comparisons (tools/bench/report.py)
WITH_BENCH=0
for arg in "$@"; do
    case "$arg" in
        --bench) WITH_BENCH=1 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) printf 'setup: error: unknown argument %s (known: --bench)\n' "$arg" >&2; exit 2 ;;
    esac
done
[ "$WITH_BENCH" -eq 0 ] || APT_PACKAGES+=("${BENCH_PACKAGES[@]}")

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces, dockerd): run it with sudo"

install_packages() {
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l
    # Services are started by this script, not by package scripts (no init system here).
    local own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        own_policy=1
    fi
    log "apt-get update"
    apt-get update -qq || { sleep 5; apt-get update -qq; }
    log "apt-get install ${APT_PACKAGES[*]}"
    apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${APT_PACKAGES[@]}" >/dev/null
    [ "$own_policy" -eq 0 ] || rm -f /usr/sbin/policy-rc.d
}

start_dockerd() {
    if docker info >/dev/null 2>&1; then
        log "dockerd already running"
        return
    fi
    if pgrep -x dockerd >/dev/null; then
        log "dockerd process exists but does not answer yet; waiting for it"
    else
        log "starting dockerd (log: $DOCKERD_LOG)"
        setsid nohup dockerd </dev/null >>"$DOCKERD_LOG" 2>&1 &
    fi
    local waited=0
    until docker info >/dev/null 2>&1; do
        if [ "$waited" -ge "$DOCKERD_WAIT_S" ]; then
            tail -n 20 "$DOCKERD_LOG" >&2 || true
            die "dockerd did not answer within ${DOCKERD_WAIT_S}s: see $DOCKERD_LOG (last lines above)"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    log "dockerd is up after ${waited}s"
}

pick_python() {
    local cand
    for cand in "${PYTHON:-}" python3 /usr/bin/python3; do
        [ -n "$cand" ] || continue
        if "$cand" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$cand"
            return
        fi
    done
    die "no Python >= 3.11 with venv found: install python3 and python3-venv, or set PYTHON"
}

make_venv() {
    local venv="$REPO/.venv"
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
        local py
        py="$(pick_python)"
        log "creating $venv with $py"
        rm -rf "$venv"
        "$py" -m venv "$venv"
    fi
    log "pip install -e '.[test,bench]'"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$REPO[test,bench]"
}

install_packages
start_dockerd
make_venv
log "test image: $(cd "$REPO" && .venv/bin/python -m tools.lab image)"
log "done"
