#!/usr/bin/env bash
# Install meshd on a host (Debian/Ubuntu, as root) from this source tree and start it.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: deploy/install.sh (--new-secret | --secret FILE) [--join ADDRESS]... [options]

Install meshd on this host (Debian 12 / Ubuntu 23.04 or newer, as root) from this
source tree, and start it.

  first host:   sudo deploy/install.sh --new-secret
                (makes the cluster secret /etc/meshd/secret; copy that file to the
                other hosts, e.g. scp /etc/meshd/secret host2:/root/meshd-secret)
  other hosts:  sudo deploy/install.sh --secret /root/meshd-secret --join 192.0.2.11

Options:
  --new-secret      make a new cluster secret (the first host of a new cluster)
  --secret FILE     the cluster secret of an existing cluster (the same file on every host)
  --join ADDRESS    a member to join through (host or host:port; repeatable);
                    none: bootstrap a new cluster
  --name NAME       member name (agent.name); default the hostname
  --advertise IP    address other hosts reach this one at; default: the default route's
  --no-start        install only; print how to start
  --check           only check that this host can run meshd (Python, Docker), change nothing
  -h, --help        this text

It needs Python >= 3.11 (with venv) and Docker (docker.io or Docker CE). It installs
meshd into /opt/meshd/venv (linked as /usr/local/bin/meshd; its CNI plugin as meshd in
/opt/cni/bin and /usr/lib/cni), the docs into
/usr/share/doc/meshd, writes /etc/meshd/secret (0600) and a minimal
/etc/meshd/meshd.toml (an existing one is kept), installs deploy/meshd.service and
starts it; without systemd it prints the command to run.
EOF
}

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECRET="" NEW_SECRET=0 NAME="" ADVERTISE="" START=1 CHECK_ONLY=0
JOIN=()
die() { echo "install: error: $*" >&2; exit 1; }
usage_error() { echo "install: error: $*" >&2; echo "see: $0 --help" >&2; exit 2; }
# the value of option $1, which must be given as the next argument ($2)
value_of() { [ $# -ge 2 ] && [ -n "$2" ] && [ "${2#--}" = "$2" ] || usage_error "$1 needs a value"; }

check_prerequisites() {
    command -v python3 >/dev/null || die "python3 is missing: install python3 and python3-venv"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "meshd needs Python >= 3.11; this host has $(python3 -V 2>&1) (Debian 12 and Ubuntu 23.04 have 3.11)"
    python3 -c 'import venv, ensurepip' 2>/dev/null || die "Python's venv is missing: install python3-venv"
    command -v docker >/dev/null \
        || die "Docker is not installed: meshd networks Docker containers; install docker.io (apt) or Docker CE first"
    docker info >/dev/null 2>&1 \
        || echo "install: warning: dockerd does not answer: meshd waits for it (systemctl start docker)" >&2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --secret) value_of "$@"; SECRET="$2"; shift 2 ;;
        --new-secret) NEW_SECRET=1; shift ;;
        --join) value_of "$@"; JOIN+=("$2"); shift 2 ;;
        --name) value_of "$@"; NAME="$2"; shift 2 ;;
        --advertise) value_of "$@"; ADVERTISE="$2"; shift 2 ;;
        --no-start) START=0; shift ;;
        --check) CHECK_ONLY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage_error "unknown option $1" ;;
    esac
done
if [ "$CHECK_ONLY" -eq 1 ]; then
    check_prerequisites
    echo "install: this host can run meshd ($(python3 -V 2>&1), $(docker --version))"
    exit 0
fi
[ -n "$SECRET" ] || [ "$NEW_SECRET" -eq 1 ] || usage_error "give --new-secret (first host) or --secret FILE (the cluster's secret)"
[ -z "$SECRET" ] || [ "$NEW_SECRET" -eq 0 ] || usage_error "give --new-secret or --secret FILE, not both"
[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0 ...)"
[ -z "$SECRET" ] || [ -r "$SECRET" ] || die "cannot read the secret file $SECRET"
if [ "$NEW_SECRET" -eq 1 ] && [ -e /etc/meshd/secret ]; then
    die "/etc/meshd/secret exists: this host already has a cluster secret; use --secret /etc/meshd/secret to keep it"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3 python3-venv iproute2 nftables iputils-ping >/dev/null
check_prerequisites

python3 -m venv /opt/meshd/venv
/opt/meshd/venv/bin/pip install -q "$SRC"
ln -sf /opt/meshd/venv/bin/meshd /usr/local/bin/meshd
# the CNI plugin: runtimes look for type "meshd" in their plugin directories
for dir in /opt/cni/bin /usr/lib/cni; do
    install -d -m 0755 "$dir"
    ln -sf /opt/meshd/venv/bin/meshd-cni "$dir/meshd"
done
install -d -m 0755 /usr/share/doc/meshd
install -m 0644 "$SRC"/docs/*.md /usr/share/doc/meshd/

install -d -m 0755 /etc/meshd
install -d -m 0700 /var/lib/meshd
if [ "$NEW_SECRET" -eq 1 ]; then
    meshd keygen --out /etc/meshd/secret
else
    install -m 0600 "$SECRET" /etc/meshd/secret
fi
if [ ! -f /etc/meshd/meshd.toml ]; then
    {
        echo "# written by deploy/install.sh; every option: meshd config sample"
        echo "[agent]"
        [ -z "$NAME" ] || echo "name = \"$NAME\""
        [ -z "$ADVERTISE" ] || echo "advertise_address = \"$ADVERTISE\""
        printf 'join = ['; sep=""; for j in "${JOIN[@]}"; do printf '%s"%s"' "$sep" "$j"; sep=", "; done; echo "]"
    } >/etc/meshd/meshd.toml
fi
meshd config check /etc/meshd/meshd.toml

if [ "$START" -eq 0 ]; then
    echo "installed; start with: systemctl enable --now meshd   (or: meshd agent --config /etc/meshd/meshd.toml)"
elif [ -d /run/systemd/system ]; then
    install -m 0644 "$SRC/deploy/meshd.service" /etc/systemd/system/meshd.service
    systemctl daemon-reload
    systemctl enable --now meshd
    echo "meshd is running: meshd status ; meshd top"
else
    echo "no systemd here: run  meshd agent --config /etc/meshd/meshd.toml  (e.g. under your supervisor)"
fi
[ "$NEW_SECRET" -eq 0 ] || echo "copy /etc/meshd/secret to every other host (mode 0600) and install them with --secret FILE --join <this host>"
