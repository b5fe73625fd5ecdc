"""Container specs: what a container's labels or seed-002 environment ask of meshd (pure).

Theory of operation
-------------------
:func:`parse_spec` reads one :class:`ContainerInfo` and returns a
:class:`ContainerSpec`: one :class:`ConnectRequest` per network the container
asks to join, or none when it asks nothing (then the agent may still own
endpoints for it, connected through the scheduler API).  Two sources, labels
first:

* **Labels** (meshd's own): ``meshd.network=red`` or ``meshd.network=red,blue``;
  per-endpoint labels ``meshd.ip``, ``meshd.mac``, ``meshd.rate_kbit``,
  ``meshd.burst_bytes``, ``meshd.latency_ms`` apply to every listed network,
  and ``meshd.<field>.<network>`` overrides one (``meshd.ip.blue=10.2.0.5``).
  ``meshd.ip`` and ``meshd.mac`` without a suffix need exactly one network.
* **Environment** (seed 002, Table 5.2): ``TYPE`` (flat | dhcp | vlan), ``IP``
  (CIDR or bare), ``GW``, ``VLAN``/``VLANID`` (the network's name), ``RATE``
  (kbit/s), ``BURST`` (also the seed's spelling ``BRUST``; bytes), ``LATENCY``
  (ms); meshd adds ``NETWORK`` to name the network for any ``TYPE``.
  ``HOSTIF`` (the host NIC of a flat network: the agent checks it) is kept.
  Used only when the container has no ``meshd.network`` label.
* **Service** (issue 17, docs/dns.md): labels ``meshd.service=NAME`` and
  ``meshd.port=P`` (optional ``meshd.check=running|tcp``, ``meshd.ttl=S``),
  else seed 002's ``DISCOVER=true`` (the service is the container's name) or
  ``DISCOVER=NAME``, and ``PORT=P``: once connected, the container is
  published as an entry of that service in each of its networks.

Every bad value raises :class:`SpecError` naming the container, the key, and
the fix.  Nothing here does I/O, so the watcher can run it on every event.
"""

from __future__ import annotations

import difflib
import enum
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from meshd.state import BURST_MAX_BYTES, LATENCY_MAX_MS, RATE_MAX_KBIT, Connect, Qos, qos_with_defaults

from ._errors import SpecError
from ._types import ContainerInfo

LABEL_PREFIX = "meshd."
LABEL_NETWORK = "meshd.network"
#: per-endpoint label fields (``meshd.<field>`` or ``meshd.<field>.<network>``)
ENDPOINT_FIELDS = ("ip", "mac", "rate_kbit", "burst_bytes", "latency_ms")
KNOWN_FIELDS = ("network", *ENDPOINT_FIELDS)
#: the seed's network types (env ``TYPE``); meshd builds ``vlan`` as a VXLAN tenant network
SEED_TYPES = ("flat", "dhcp", "vlan")
#: env variables that name the network, in order of precedence
ENV_NETWORK_KEYS = ("NETWORK", "VLAN", "VLANID")
_IFNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}\Z")


#: service labels (``meshd.service``, ``meshd.port``, ``meshd.check``, ``meshd.ttl``)
SERVICE_FIELDS = ("service", "port", "check", "ttl")
_LABEL_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_MAC_RE = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}\Z")
_INT_RE = re.compile(r"[0-9]{1,12}\Z")


class Source(enum.StrEnum):
    """Where a container's requests came from."""

    NONE = "none"
    LABELS = "labels"
    ENV = "env"


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """Connect container ``container_id`` (process ``pid``) to ``network``.

    ``ip``/``mac`` are requests (None = let the state allocate); ``prefix_len``
    and ``gateway`` are what a seed-002 ``IP=a.b.c.d/len`` / ``GW`` asked for,
    for the agent to check against the network.  QoS fields are 0 when
    unlimited; when ``rate_kbit`` is set, burst and latency are too.
    """

    container_id: str
    container_name: str
    pid: int
    network: str
    ip: str | None = None
    mac: str | None = None
    rate_kbit: int = 0
    burst_bytes: int = 0
    latency_ms: int = 0
    prefix_len: int | None = None
    gateway: str | None = None
    source: Source = Source.LABELS
    seed_type: str | None = None
    #: seed-002 ``HOSTIF``: the host NIC the container expects its flat interface on
    hostif: str | None = None

    @property
    def qos(self) -> Qos:
        return Qos(self.rate_kbit, self.burst_bytes, self.latency_ms)

    def to_connect(self, host: str) -> Connect:
        """The replicated-state command that attaches this endpoint on ``host``."""
        return Connect(
            endpoint_id=self.container_id, network=self.network, host=host,
            ip=self.ip, mac=self.mac, qos=self.qos, name=self.container_name or None,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ServiceRequest:
    """Publish the container as an entry of service ``name`` (labels or seed-002 DISCOVER/PORT)."""

    name: str
    port: int
    check: str = "running"
    ttl_s: int = 30


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """What one container asks of meshd: zero or more connect requests."""

    container_id: str
    container_name: str
    pid: int
    source: Source
    requests: tuple[ConnectRequest, ...] = ()
    #: the service to publish it as, once connected (None: none)
    service: ServiceRequest | None = None

    @property
    def managed(self) -> bool:
        """True when the container's labels or environment ask for meshd networks."""
        return bool(self.requests)

    @property
    def networks(self) -> tuple[str, ...]:
        return tuple(r.network for r in self.requests)


def parse_spec(info: ContainerInfo) -> ContainerSpec:
    """Read the container's meshd labels, else its seed-002 environment.

    Raises:
        SpecError: a label or variable is malformed, out of range, inconsistent,
            or the container shares another namespace (``--network host``).
    """
    ctx = str(info)
    source, requests = Source.LABELS, _from_labels(ctx, info)
    if requests is None:
        source, requests = Source.ENV, _from_env(ctx, info)
    service = _service(ctx, info)
    if requests is None:
        return ContainerSpec(info.id, info.name, info.pid, Source.NONE, service=service)
    _check_network_mode(ctx, info, source)
    return ContainerSpec(info.id, info.name, info.pid, source, tuple(requests), service)


def _service(ctx: str, info: ContainerInfo) -> ServiceRequest | None:
    """``meshd.service``/``meshd.port`` (+ ``meshd.check``, ``meshd.ttl``), else env ``DISCOVER``/``PORT``."""
    labels, env = info.labels, info.env
    if LABEL_PREFIX + "service" in labels:
        name = (LABEL_PREFIX + "service", labels[LABEL_PREFIX + "service"])
        port = (LABEL_PREFIX + "port", labels[LABEL_PREFIX + "port"]) if LABEL_PREFIX + "port" in labels else None
        check_kv = (LABEL_PREFIX + "check", labels.get(LABEL_PREFIX + "check", "running"))
        ttl = (LABEL_PREFIX + "ttl", labels[LABEL_PREFIX + "ttl"]) if LABEL_PREFIX + "ttl" in labels else None
        fix = "add --label meshd.port=<port>"
    elif env.get("DISCOVER", "").strip().lower() not in ("", "false", "0", "no", "off"):
        value = env["DISCOVER"].strip()
        if value.lower() in ("true", "1", "yes", "on"):  # seed 002: DISCOVER=true publishes the container's name
            value = re.sub(r"[^A-Za-z0-9-]+", "-", info.name).strip("-")[:63] or info.id[:12]
        name, port, check_kv, ttl = ("env DISCOVER", value), _env_kv(env, "PORT"), ("", "running"), None
        fix = "add -e PORT=<port>"
    else:
        for key in ("port", "check", "ttl"):
            if LABEL_PREFIX + key in labels:
                raise SpecError(ctx, LABEL_PREFIX + key, labels[LABEL_PREFIX + key], "is set but meshd.service is "
                                "missing", "add --label meshd.service=<name> (or remove the label)")
        return None
    if not _LABEL_RE.match(name[1]):
        raise SpecError(ctx, *name, "is not a DNS label", "use 1-63 letters, digits or '-', e.g. web")
    if port is None:
        raise SpecError(ctx, *name, "names a service but no port", fix)
    if check_kv[1] not in ("running", "tcp"):
        raise SpecError(ctx, *check_kv, "is not a health check", "use meshd.check=running or meshd.check=tcp")
    return ServiceRequest(name[1].lower(), _parse_int(ctx, port, "port", 65_535), check_kv[1],
                          _parse_int(ctx, ttl, "s", 86_400) if ttl else 30)


def _check_network_mode(ctx: str, info: ContainerInfo, source: Source) -> None:
    mode = info.network_mode
    if mode == "host" or mode.startswith("container:"):
        key = LABEL_NETWORK if source is Source.LABELS else "env TYPE"
        value = info.labels.get(LABEL_NETWORK, "") if source is Source.LABELS else info.env.get("TYPE", "")
        raise SpecError(
            ctx, key, value, f"is set but the container runs with --network {mode} (no namespace of its own)",
            "start it with --network none so meshd can give it its own interface",
        )  # fmt: skip


# --- labels -------------------------------------------------------------------------------


def _from_labels(ctx: str, info: ContainerInfo) -> list[ConnectRequest] | None:
    fields = _collect_labels(ctx, info.labels)
    raw_networks = info.labels.get(LABEL_NETWORK)
    if raw_networks is None:
        if fields:
            key, value = next(iter(next(iter(fields.values())).values()))
            raise SpecError(ctx, key, value, "is set but meshd.network is missing",
                            "add --label meshd.network=<network> (or remove the label)")  # fmt: skip
        return None
    networks = _parse_networks(ctx, LABEL_NETWORK, raw_networks, allow_several=True)
    _check_scopes(ctx, fields, networks)
    return [_label_request(ctx, info, net, fields, len(networks)) for net in networks]


def _collect_labels(ctx: str, labels: Mapping[str, str]) -> dict[str, dict[str | None, tuple[str, str]]]:
    """``{field: {network or None: (label, value)}}`` for every per-endpoint label."""
    fields: dict[str, dict[str | None, tuple[str, str]]] = {}
    for key, value in sorted(labels.items()):
        if not key.startswith(LABEL_PREFIX) or key == LABEL_NETWORK:
            continue
        name, _, scope = key[len(LABEL_PREFIX) :].partition(".")
        if name in ENDPOINT_FIELDS:
            fields.setdefault(name, {})[scope or None] = (key, value)
            continue
        if name in SERVICE_FIELDS and not scope:
            continue  # read by _service
        if name == "network":
            raise SpecError(ctx, key, value, "is not a meshd label",
                            "list several networks in one label: meshd.network=red,blue")  # fmt: skip
        close = difflib.get_close_matches(name, KNOWN_FIELDS, n=1, cutoff=0.6)
        if close:
            known = ", ".join(LABEL_PREFIX + f for f in KNOWN_FIELDS)
            raise SpecError(ctx, key, value, "is not a meshd label",
                            f"did you mean {LABEL_PREFIX}{close[0]}? (known: {known})")  # fmt: skip
    return fields


def _check_scopes(ctx: str, fields: dict[str, dict[str | None, tuple[str, str]]], networks: list[str]) -> None:
    listed = ",".join(networks)
    for name, scoped in fields.items():
        for scope, (key, value) in scoped.items():
            if scope is not None and scope not in networks:
                raise SpecError(ctx, key, value, f"names network {scope!r}, which is not in meshd.network={listed}",
                                f"fix the suffix or add {scope} to meshd.network")  # fmt: skip
            if scope is None and name in ("ip", "mac") and len(networks) > 1:
                raise SpecError(ctx, key, value, f"would apply to all of meshd.network={listed}",
                                f"give one per network: {key}.<network>=…")  # fmt: skip


def _label_request(
    ctx: str, info: ContainerInfo, network: str, fields: dict[str, dict[str | None, tuple[str, str]]], count: int
) -> ConnectRequest:
    def pick(name: str) -> tuple[str, str] | None:
        scoped = fields.get(name, {})
        return scoped.get(network, scoped.get(None))

    ip_kv, mac_kv = pick("ip"), pick("mac")
    ip, prefix_len = _parse_ip(ctx, *ip_kv) if ip_kv else (None, None)
    rate, burst, latency = _parse_qos(ctx, pick("rate_kbit"), pick("burst_bytes"), pick("latency_ms"))
    return ConnectRequest(
        container_id=info.id, container_name=info.name, pid=info.pid, network=network,
        ip=ip, mac=_parse_mac(ctx, *mac_kv) if mac_kv else None,
        rate_kbit=rate, burst_bytes=burst, latency_ms=latency, prefix_len=prefix_len,
        source=Source.LABELS,
    )  # fmt: skip


# --- seed-002 environment -----------------------------------------------------------------


def _from_env(ctx: str, info: ContainerInfo) -> list[ConnectRequest] | None:
    env = info.env
    raw_type = env.get("TYPE")
    if raw_type is None:
        return None
    seed_type = raw_type.strip().lower()
    if seed_type not in SEED_TYPES:
        if not any(k in env for k in (*ENV_NETWORK_KEYS[1:], "HOSTIF")):
            return None  # an unrelated TYPE variable, not a seed-002 container
        raise SpecError(ctx, "env TYPE", raw_type, "is not a seed-002 network type",
                        "use TYPE=vlan with VLAN=<network>, or TYPE=flat/dhcp with NETWORK=<network>")  # fmt: skip
    network = _env_network(ctx, env, seed_type)
    ip, prefix_len = _env_ip(ctx, env, seed_type)
    gateway = _env_gateway(ctx, env, ip, prefix_len)
    rate, burst, latency = _parse_qos(ctx, _env_kv(env, "RATE"), _env_burst(ctx, env), _env_kv(env, "LATENCY"))
    hostif = _env_kv(env, "HOSTIF")
    if hostif is not None and not _IFNAME_RE.match(hostif[1]):
        raise SpecError(ctx, *hostif, "is not an interface name", "give the host NIC, e.g. HOSTIF=eth0")
    request = ConnectRequest(
        container_id=info.id, container_name=info.name, pid=info.pid, network=network,
        ip=ip, rate_kbit=rate, burst_bytes=burst, latency_ms=latency, prefix_len=prefix_len,
        gateway=gateway, source=Source.ENV, seed_type=seed_type, hostif=hostif[1] if hostif else None,
    )  # fmt: skip
    return [request]


def _env_kv(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    value = env.get(name)
    return None if value is None or value == "" else (f"env {name}", value)


def _env_network(ctx: str, env: Mapping[str, str], seed_type: str) -> str:
    given = [(k, env[k]) for k in ENV_NETWORK_KEYS if env.get(k)]
    if not given:
        hint = "VLAN=<network>" if seed_type == "vlan" else "NETWORK=<network> (a meshd network)"
        raise SpecError(ctx, "env TYPE", env["TYPE"], "names no meshd network", f"add -e {hint}")
    key, value = given[0]
    for other, other_value in given[1:]:
        if other_value != value:
            raise SpecError(ctx, f"env {other}", other_value, f"disagrees with {key}={value!r}",
                            "set only one of NETWORK, VLAN, VLANID")  # fmt: skip
    return _parse_networks(ctx, f"env {key}", value, allow_several=False)[0]


def _env_ip(ctx: str, env: Mapping[str, str], seed_type: str) -> tuple[str | None, int | None]:
    kv = _env_kv(env, "IP")
    if seed_type == "dhcp" and kv:
        raise SpecError(ctx, *kv, "is set but TYPE=dhcp takes its address from DHCP",
                        "drop IP, or use TYPE=vlan to request a fixed address")  # fmt: skip
    if seed_type == "flat" and not kv:
        raise SpecError(ctx, "env IP", "", "is missing: TYPE=flat uses a static address",
                        "add -e IP=<address>/<prefix>")  # fmt: skip
    return _parse_ip(ctx, *kv) if kv else (None, None)


def _env_gateway(ctx: str, env: Mapping[str, str], ip: str | None, prefix_len: int | None) -> str | None:
    kv = _env_kv(env, "GW")
    if kv is None:
        return None
    gateway, gw_prefix = _parse_ip(ctx, *kv)
    if gw_prefix is not None:
        raise SpecError(ctx, *kv, "has a prefix length", "give the gateway as a bare address, e.g. GW=10.1.0.1")
    if ip is not None and prefix_len is not None:
        subnet = ipaddress.IPv4Interface(f"{ip}/{prefix_len}").network
        if ipaddress.IPv4Address(gateway) not in subnet or gateway == ip:
            raise SpecError(ctx, *kv, f"is not another address in the container's subnet {subnet}",
                            "use the network's gateway (same subnet as IP)")  # fmt: skip
    return gateway


def _env_burst(ctx: str, env: Mapping[str, str]) -> tuple[str, str] | None:
    burst, brust = _env_kv(env, "BURST"), _env_kv(env, "BRUST")
    if burst and brust and burst[1] != brust[1]:
        raise SpecError(ctx, *brust, f"disagrees with BURST={burst[1]!r}", "set only BURST")
    return burst or brust


# --- field parsers ------------------------------------------------------------------------


def _parse_networks(ctx: str, key: str, value: str, *, allow_several: bool) -> list[str]:
    names = [n.strip() for n in value.split(",")]
    if not allow_several and len(names) > 1:
        raise SpecError(ctx, key, value, "lists several networks",
                        "the environment joins one network: use labels, meshd.network=a,b")  # fmt: skip
    for name in names:
        if not _NAME_RE.match(name):
            raise SpecError(ctx, key, value, f"has an invalid network name {name!r}",
                            "use 1-64 letters, digits, '_', '.' or '-', comma-separated")  # fmt: skip
    if len(set(names)) != len(names):
        raise SpecError(ctx, key, value, "lists a network twice", "list each network once")
    return names


def _parse_ip(ctx: str, key: str, value: str) -> tuple[str, int | None]:
    """``10.1.0.5`` or ``10.1.0.5/24`` → (address, prefix length or None)."""
    text = value.strip()
    try:
        iface = ipaddress.IPv4Interface(text)
    except ValueError:
        raise SpecError(ctx, key, value, "is not an IPv4 address",
                        "give an address such as 10.1.0.5 (or 10.1.0.5/24)") from None  # fmt: skip
    addr = iface.ip
    if addr.is_multicast or addr.is_loopback or addr.is_unspecified or addr.is_link_local:
        raise SpecError(ctx, key, value, "is not a unicast host address", "use an address from the network's subnet")
    prefix_len = iface.network.prefixlen if "/" in text else None
    if prefix_len is not None and prefix_len <= 30 and addr in (iface.network.network_address,
                                                                iface.network.broadcast_address):  # fmt: skip
        raise SpecError(ctx, key, value, f"is the network or broadcast address of {iface.network}",
                        "use a host address inside the subnet")  # fmt: skip
    return str(addr), prefix_len


def _parse_mac(ctx: str, key: str, value: str) -> str:
    text = value.strip().lower()
    if not _MAC_RE.match(text):
        raise SpecError(ctx, key, value, "is not a MAC address", "use six hex octets, e.g. 02:6d:0a:01:00:05")
    if int(text[:2], 16) & 1 or text == "00:00:00:00:00:00":
        raise SpecError(ctx, key, value, "is a multicast or zero MAC",
                        "use a unicast MAC (even first octet), e.g. 02:6d:0a:01:00:05")  # fmt: skip
    return text


def _parse_int(ctx: str, kv: tuple[str, str] | None, unit: str, high: int) -> int:
    if kv is None:
        return 0
    key, value = kv
    text = value.strip()
    if not _INT_RE.match(text) or not 1 <= int(text) <= high:
        raise SpecError(ctx, key, value, f"is not a whole number of {unit} in 1..{high}",
                        f"give e.g. {key.split()[-1]}=500 ({unit})")  # fmt: skip
    return int(text)


def _parse_qos(
    ctx: str, rate_kv: tuple[str, str] | None, burst_kv: tuple[str, str] | None, latency_kv: tuple[str, str] | None
) -> tuple[int, int, int]:
    """(rate kbit/s, burst bytes, latency ms); burst and latency get defaults when only a rate is given."""
    rate = _parse_int(ctx, rate_kv, "kbit/s", RATE_MAX_KBIT)
    burst = _parse_int(ctx, burst_kv, "bytes", BURST_MAX_BYTES)
    latency = _parse_int(ctx, latency_kv, "ms", LATENCY_MAX_MS)
    if not rate:
        for kv in (burst_kv, latency_kv):
            if kv is not None:
                env = kv[0].startswith("env")
                rate_key, flag = ("env RATE", "-e RATE") if env else ("meshd.rate_kbit", "--label meshd.rate_kbit")
                raise SpecError(ctx, *kv, f"is set without {rate_key}", f"add {flag}=<kbit/s> (or drop it)")
        return 0, 0, 0
    qos = qos_with_defaults(rate, burst, latency)  # the state's limits and defaults: a spec that parses is accepted
    return qos.rate_kbit, qos.burst_bytes, qos.latency_ms
