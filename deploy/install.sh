#!/usr/bin/env bash
# Install meshd on a new host (Debian/Ubuntu, as root) from this source tree and start it.
#
#   first host:   meshd keygen --out secret        (anywhere meshd runs; keep the file safe)
#                 sudo deploy/install.sh --secret secret
#   other hosts:  sudo deploy/install.sh --secret secret --join 192.0.2.11
#
# Options: --secret FILE (required: the cluster secret, same on every host)
#          --join ADDRESS (a member's address; repeatable; none = bootstrap a new cluster)
#          --name NAME (member name; default the hostname)
#          --advertise IP (address other hosts reach this one at; default: auto)
#          --no-start (install only)
# It installs to /opt/meshd/venv, writes /etc/meshd/{secret,meshd.toml} (an existing
# meshd.toml is kept), installs the systemd unit and starts it; without systemd it
# prints the command to run.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECRET="" NAME="" ADVERTISE="" START=1
JOIN=()
die() { echo "install: error: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
    case "$1" in
        --secret) SECRET="$2"; shift 2 ;;
        --join) JOIN+=("$2"); shift 2 ;;
        --name) NAME="$2"; shift 2 ;;
        --advertise) ADVERTISE="$2"; shift 2 ;;
        --no-start) START=0; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
[ "$(id -u)" -eq 0 ] || die "run as root"
[ -n "$SECRET" ] || die "--secret FILE is required: the cluster secret from 'meshd keygen', the same on every host"
[ -r "$SECRET" ] || die "cannot read $SECRET"

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3 python3-venv iproute2 nftables iputils-ping >/dev/null
python3 -m venv /opt/meshd/venv
/opt/meshd/venv/bin/pip install -q "$SRC"
ln -sf /opt/meshd/venv/bin/meshd /usr/local/bin/meshd

install -d -m 0755 /etc/meshd
install -d -m 0700 /var/lib/meshd
install -m 0600 "$SECRET" /etc/meshd/secret
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
