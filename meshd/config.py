"""meshd's configuration: one frozen dataclass tree, each default beside its doc.

Theory of operation
-------------------
:class:`Config` nests one section per concern — ``agent``, ``transport``,
``gossip`` (:class:`meshd.gossip.GossipConfig`), ``raft``
(:class:`consensus.RaftConfig`, which stands alone), ``api`` and
``dataplane``.  Every field carries its default and its unit in its name
(``_s``, ``_bytes``, ``_kbit``).

A configuration is built in three steps, and validated once at the end:

1. a profile: :meth:`Config.lan` (production defaults) or :meth:`Config.local`
   (fast timing for tests and the lab on one machine);
2. a TOML file (``/etc/meshd/meshd.toml`` by default): ``[section]`` tables
   whose keys are field names; an unknown key is an error that suggests the
   closest real one;
3. overrides from flags, as ``section.field=value`` strings.

:func:`load` does all three and calls :meth:`Config.validate`, which raises
one :class:`ConfigError` listing every problem, each naming the field and the
fix ("gossip.probe_timeout_s (2.0) must be smaller than
gossip.probe_interval_s (1.0) ...").
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
import socket
import tomllib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from consensus import RaftConfig
from meshd.gossip import GossipConfig
from meshd.transport import TransportConfig

#: Where ``meshd`` looks for its configuration file when none is given.
DEFAULT_CONFIG_PATH = Path("/etc/meshd/meshd.toml")
#: the values of ``agent.log_level`` (and of ``meshd log-level``)
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """The configuration is invalid; the message lists every problem and its fix."""

    def __init__(self, problems: list[str], source: str = "configuration") -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source} has {len(problems)} problem(s):\n{lines}")


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """Identity, files and addresses of this host's agent."""

    #: This host's member name in the cluster; empty means the hostname.
    #: Must be unique in the cluster and stable across restarts.
    name: str = ""
    #: Durable state (Raft log, snapshots, hard state, endpoint records).
    data_dir: str = "/var/lib/meshd"
    #: Runtime files: the local control socket lives here (root-only).
    run_dir: str = "/run/meshd"
    #: The cluster secret made by ``meshd keygen``; all inter-host keys derive
    #: from it.  Readable by root only.
    secret_file: str = "/etc/meshd/secret"
    #: Address the inter-host sockets (gossip, Raft) bind to.
    bind_address: str = "0.0.0.0"
    #: Address other hosts use to reach this one (also the VTEP address);
    #: empty means the address of the interface holding the default route.
    advertise_address: str = ""
    #: TCP port of SWIM gossip.
    gossip_port: int = 7946
    #: TCP port of Raft.
    raft_port: int = 7947
    #: Members to join at start (``host`` or ``host:port``); empty means
    #: bootstrap a new cluster unless local state says otherwise.
    join: tuple[str, ...] = ()
    #: How long a join (at start with ``join``, or ``meshd join``) keeps
    #: asking the given members before it fails, seconds. It retries with a
    #: jittered backoff up to 5 s, so hosts started together do not give up
    #: while the first members are still busy starting.
    join_timeout_s: float = 120.0
    #: Log level: debug, info, warning or error.
    log_level: str = "info"
    #: Autopilot: a failed Raft voter is replaced by a healthy learner after
    #: this long, seconds (a flapping host is not demoted at once).
    voter_fail_grace_s: float = 30.0
    #: Autopilot: a learner must be alive and caught up this long before it
    #: can become a voter, seconds.
    learner_stable_s: float = 5.0
    #: Only containers carrying all these Docker labels (``key=value``)
    #: belong to this host; empty means every container of the local dockerd.
    #: Set it when several agents share one dockerd (the lab does).
    container_labels: tuple[str, ...] = ()
    #: SIGTERM or SIGINT (``systemctl stop``/``restart``, Ctrl-C): false stops
    #: the agent without leaving the cluster, so the other hosts keep this
    #: host's containers reachable while it restarts (a Raft leader still
    #: hands leadership over first); true leaves as ``meshd leave`` does
    #: (every other host withdraws this host's entries at once).
    #: ``meshd leave`` always leaves.
    leave_on_terminate: bool = False


@dataclass(frozen=True, kw_only=True)
class ApiConfig:
    """The scheduler API (seed 001 framing), local control and metrics."""

    #: Address the scheduler sockets bind to.
    bind_address: str = "0.0.0.0"
    #: SUB socket for fire-and-forget scheduler commands (seed 001 port).
    sub_port: int = 30027
    #: ROUTER socket answering each request.
    router_port: int = 30028
    #: PUB socket announcing results and events.
    pub_port: int = 30029
    #: Directory of scheduler client public keys (``meshd keygen --client``)
    #: allowed to talk to the API: one ``NAME.pub`` file per client, the same
    #: on every host, read at start.  Never put a client's ``NAME.key`` here
    #: (the agent refuses to start): that secret stays with the client.
    clients_dir: str = "/etc/meshd/clients"
    #: Largest scheduler frame accepted (header + msgpack body), bytes.
    max_frame_bytes: int = 64 << 10
    #: Prometheus metrics HTTP port on ``metrics_address``; 0 disables metrics.
    metrics_port: int = 9477
    #: Address the metrics endpoint binds to.
    metrics_address: str = "127.0.0.1"
    #: The web view's HTTP port on ``web_address`` (docs/web.md): a read-only
    #: page of the whole cluster, its JSON and its live events; 0 disables it.
    web_port: int = 9478
    #: Address the web view binds to.  It shows tenant names, subnets and
    #: container addresses to anyone who can connect and has no login of its
    #: own: keep it on loopback and reach it through an SSH tunnel or a
    #: reverse proxy with authentication (docs/web.md).
    web_address: str = "127.0.0.1"
    #: Host names the web view answers to besides IP addresses and
    #: ``localhost`` (e.g. the public name of a reverse proxy in front of it).
    #: A request whose ``Host`` header names anything else is refused with 421:
    #: that is how a DNS-rebinding page in a browser on this host would come.
    web_hosts: tuple[str, ...] = ()
    #: The Docker network and IPAM driver's name: ``docker network create -d
    #: NAME --ipam-driver NAME`` (docs/integrations.md).  The agent serves it
    #: on ``docker_plugin_dir/NAME.sock`` when Docker runs here; empty: no
    #: plugin.  One agent per dockerd: agents sharing one (the lab) need
    #: different names, or all but one empty.
    docker_plugin: str = "meshd"
    #: Where dockerd looks for plugin sockets.
    docker_plugin_dir: str = "/run/docker/plugins"
    #: A connect received by the container's own host is answered when its
    #: interface is up; after this long, with INTERFACE_FAILED instead, seconds.
    interface_timeout_s: float = 10.0
    #: Endpoint rx/tx counters are read and published (EVENT_ENDPOINT_STATS)
    #: this often, seconds.
    stats_interval_s: float = 2.0


@dataclass(frozen=True, kw_only=True)
class DataplaneConfig:
    """How this host builds its kernel networking."""

    #: Underlay device (VTEP source, MTU source); empty means the device of
    #: the advertise address.
    underlay_device: str = ""
    #: The host NIC flat (macvlan) networks hang their containers' interfaces
    #: off, when the network gives no ``parent`` option; empty means the
    #: underlay device.
    parent: str = ""
    #: UDP port of VXLAN (IANA 4789).
    vxlan_port: int = 4789
    #: Bytes VXLAN adds to each packet; container MTU = underlay MTU - this.
    vxlan_overhead_bytes: int = 50
    #: Full reconcile pass even without any trigger, seconds.
    reconcile_interval_s: float = 30.0
    #: Worker threads running netlink operations at once.
    netlink_workers: int = 2
    #: A host whose agent gossip suspects or declares dead is probed this
    #: often: an ICMP echo to its VTEP, which its kernel answers without the
    #: agent, seconds.
    probe_interval_s: float = 0.2
    #: A probed host whose data plane answered nothing for this long has
    #: failed: every other host withdraws its FDB and neighbour entries,
    #: seconds.  A host whose agent is down but whose data plane answers
    #: ("agent down") keeps them.
    probe_timeout_s: float = 0.5
    #: A host whose agent is down but whose data plane answers ("agent
    #: down") is probed this often: its verdict is given, the probes only
    #: watch for its data plane to stop too.  Every other host probes it, so
    #: it receives (hosts - 1) / this echo requests a second, seconds.
    agent_down_probe_interval_s: float = 1.0
    #: An agent down longer than this counts as failed even while its data
    #: plane answers (its view of the cluster is that old), seconds.
    agent_down_grace_s: float = 3600.0


@dataclass(frozen=True, kw_only=True)
class DnsConfig:
    """The DNS server each host runs for its local containers (docs/dns.md)."""

    #: Answer DNS at the gateway of every vxlan network with a local
    #: container, and point the containers' resolv.conf at it.
    enabled: bool = True
    #: The zone meshd answers for: ``NAME.<domain>`` and
    #: ``NAME.<network>.<domain>``; also the containers' search domain.
    domain: str = "meshd"
    #: Forward names outside ``domain`` to the host's resolvers (the
    #: nameservers of /etc/resolv.conf); off, such names get REFUSED.
    forward: bool = True
    #: A forwarded query not answered within this long gets SERVFAIL, seconds.
    forward_timeout_s: float = 2.0
    #: Forwarded queries in flight at once per host; more get SERVFAIL
    #: (bounds memory whatever clients send).
    max_forwards: int = 256
    #: TTL of container-name records, seconds (a service entry's record
    #: carries the entry's own TTL, at most this).
    ttl_s: int = 5
    #: Published services' health checks run this often at the fastest,
    #: seconds (an entry's ``interval_s`` is its own pace).
    check_tick_s: float = 0.5


_SECTIONS = ("agent", "transport", "gossip", "raft", "api", "dataplane", "dns")


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole configuration of one meshd agent."""

    agent: AgentConfig = field(default_factory=AgentConfig)
    transport: TransportConfig = field(default_factory=TransportConfig)
    gossip: GossipConfig = field(default_factory=GossipConfig.lan)
    raft: RaftConfig = field(default_factory=RaftConfig.lan)
    api: ApiConfig = field(default_factory=ApiConfig)
    dataplane: DataplaneConfig = field(default_factory=DataplaneConfig)
    dns: DnsConfig = field(default_factory=DnsConfig)

    @classmethod
    def lan(cls) -> Config:
        """Production defaults for hosts on one LAN (memberlist / etcd timing)."""
        return cls()

    @classmethod
    def local(cls) -> Config:
        """Fast timing for tests and a lab of namespaces on one machine."""
        return cls(
            agent=AgentConfig(voter_fail_grace_s=3.0, learner_stable_s=1.0),
            gossip=GossipConfig.local(),
            raft=RaftConfig.local(),
            dataplane=DataplaneConfig(reconcile_interval_s=5.0),
            # a lab never sends DNS outside it
            dns=DnsConfig(forward=False),
        )

    @property
    def node_name(self) -> str:
        """The member name: ``agent.name`` or the hostname."""
        return self.agent.name or socket.gethostname()

    def problems(self) -> list[str]:
        """Every invalid setting in every section, each naming the field and the fix."""
        out = _agent_problems(self.agent)
        out += _positive_problems(self.transport, "transport")
        if self.transport.reconnect_ivl_max_ms < self.transport.reconnect_ivl_ms:
            out.append(
                f"transport.reconnect_ivl_max_ms ({self.transport.reconnect_ivl_max_ms}) must be "
                f"at least transport.reconnect_ivl_ms ({self.transport.reconnect_ivl_ms})"
            )
        out += self.gossip.problems("gossip")
        out += self.raft.problems("raft")
        out += _api_problems(self.api)
        out += _positive_problems(self.dataplane, "dataplane")
        out += _port_problems("dataplane.vxlan_port", self.dataplane.vxlan_port)
        parent = self.dataplane.parent
        if parent and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}", parent):
            out.append(f"dataplane.parent ({parent!r}) must be an interface name of 1-15 letters, digits, '_', '.' "
                       "or '-' (the host NIC flat networks use, e.g. eth0), or empty for the underlay device")
        if self.dataplane.probe_timeout_s <= self.dataplane.probe_interval_s:
            out.append(f"dataplane.probe_timeout_s ({self.dataplane.probe_timeout_s}) must be larger than "
                       f"dataplane.probe_interval_s ({self.dataplane.probe_interval_s}): a host gets at least two "
                       "probes before it counts as failed")
        if self.dataplane.agent_down_probe_interval_s < self.dataplane.probe_interval_s:
            out.append(f"dataplane.agent_down_probe_interval_s ({self.dataplane.agent_down_probe_interval_s}) must be "
                       f"at least dataplane.probe_interval_s ({self.dataplane.probe_interval_s})")
        out += _dns_problems(self.dns)
        return out

    def validate(self, source: str = "configuration") -> Config:
        """Return self if valid.

        Raises:
          ConfigError: listing every problem found.
        """
        found = self.problems()
        if found:
            raise ConfigError(found, source)
        return self

    def replace(self, **sections: Any) -> Config:
        """A copy with whole sections replaced (``cfg.replace(agent=...)``)."""
        return dataclasses.replace(self, **sections)

    def with_overrides(self, overrides: Mapping[str, Any] | Sequence[str]) -> Config:
        """A copy with ``section.field`` values replaced.

        Args:
          overrides: a mapping ``{"gossip.probe_interval_s": 0.5}`` or a list of
            ``"section.field=value"`` strings as given on the command line;
            string values are parsed as TOML values when they are valid TOML
            (``0.5``, ``true``, ``["a", "b"]``) and taken as strings otherwise.

        Raises:
          ConfigError: an unknown section or field, or a value of the wrong type.
        """
        problems: list[str] = []
        cfg = _merge(self, _nest_overrides(overrides, problems), problems)
        if problems:
            raise ConfigError(problems, "command-line overrides")
        return cfg

    def to_toml(self) -> str:
        """The whole configuration as TOML text that :func:`load` reads back."""
        data = {s: _section_dict(getattr(self, s)) for s in _SECTIONS}
        return tomli_w.dumps(data)


def _dns_problems(dns: DnsConfig) -> list[str]:
    out = []
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*", dns.domain):
        out.append(f"dns.domain ({dns.domain!r}) must be a lower-case DNS name such as 'meshd' or 'mesh.internal'")
    for name in ("forward_timeout_s", "max_forwards", "ttl_s", "check_tick_s"):
        if getattr(dns, name) <= 0:
            out.append(f"dns.{name} ({getattr(dns, name)}) must be positive")
    return out


def load(
    path: str | Path | None = None,
    *,
    profile: str = "lan",
    overrides: Sequence[str] | Mapping[str, Any] = (),
) -> Config:
    """Build and validate a configuration: profile, then the TOML file, then overrides.

    Args:
      path: a TOML file; ``None`` reads ``/etc/meshd/meshd.toml`` if it exists.
      profile: ``"lan"`` or ``"local"``.
      overrides: ``section.field=value`` strings (or a mapping) from flags.

    Raises:
      ConfigError: unreadable file, bad TOML, unknown keys, wrong types or
        invalid values; the message names each one and its fix.
    """
    if profile not in ("lan", "local"):
        raise ConfigError([f"profile {profile!r} is unknown; use 'lan' or 'local'"])
    cfg = Config.lan() if profile == "lan" else Config.local()
    source = "configuration"
    if path is None and DEFAULT_CONFIG_PATH.exists():
        path = DEFAULT_CONFIG_PATH
    # one round: unknown keys, wrong types and invalid values are all reported together
    # (a setting of the wrong type keeps its default for the value checks)
    problems: list[str] = []
    if path is not None:
        source = str(path)
        cfg = _merge(cfg, _read_toml(Path(path)), problems)
    if overrides:
        cfg = _merge(cfg, _nest_overrides(overrides, problems, "--set "), problems)
    problems += cfg.problems()
    if problems:
        raise ConfigError(problems, source)
    return cfg


# --- helpers ----------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError([f"{path} does not exist; create it or pass --config"], str(path)) from None
    except PermissionError:
        raise ConfigError([f"{path} is not readable; run as root or fix its mode"], str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], str(path)) from None


def _nest_overrides(overrides: Mapping[str, Any] | Sequence[str], problems: list[str],
                    origin: str = "") -> dict[str, dict[str, Any]]:
    """``{"gossip.x": v}`` or ``["gossip.x=v"]`` -> ``{"gossip": {"x": v}}``; bad items go to ``problems``."""
    if isinstance(overrides, Mapping):
        pairs = dict(overrides)
    else:
        pairs = {}
        for item in overrides:
            key, sep, raw = item.partition("=")
            if not sep:
                problems.append(f"{origin}override {item!r} must look like section.field=value")
                continue
            pairs[key.strip()] = _toml_value(raw.strip())
    nested: dict[str, dict[str, Any]] = {}
    for dotted, value in pairs.items():
        section, _, name = dotted.partition(".")
        if not name:
            problems.append(f"{origin}override {dotted!r} must look like section.field=value")
            continue
        nested.setdefault(section, {})[name] = value
    return nested


def _merge(cfg: Config, data: Mapping[str, Any], problems: list[str]) -> Config:
    """``cfg`` with the valid settings of ``data``; each invalid one is added to ``problems``."""
    sections: dict[str, Any] = {}
    for section, values in data.items():
        if section not in _SECTIONS:
            problems.append(_unknown("section", section, _SECTIONS))
            continue
        if not isinstance(values, Mapping):
            problems.append(f"[{section}] must be a table of settings")
            continue
        current = getattr(cfg, section)
        changes = _coerce_section(current, section, values, problems)
        sections[section] = dataclasses.replace(current, **changes)
    return dataclasses.replace(cfg, **sections)


def _coerce_section(
    current: Any, section: str, values: Mapping[str, Any], problems: list[str]
) -> dict[str, Any]:
    hints = typing.get_type_hints(type(current))
    names = [f.name for f in dataclasses.fields(current)]
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in names:
            problems.append(_unknown("setting", f"{section}.{key}", [f"{section}.{n}" for n in names]))
            continue
        try:
            changes[key] = _coerce(hints[key], value)
        except TypeError as exc:
            problems.append(f"{section}.{key} ({value!r}) {exc}")
    return changes


def _coerce(hint: Any, value: Any) -> Any:
    if hint is float and type(value) in (int, float):
        return float(value)
    if hint in (int, str, bool) and type(value) is hint:
        return value
    if typing.get_origin(hint) is tuple and isinstance(value, (list, tuple)):
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        return tuple(_coerce(item, v) for v in value)
    expected = {float: "a number", int: "an integer", str: "a string", bool: "true or false"}
    raise TypeError(f"must be {expected.get(hint, 'a list')}")


def _unknown(kind: str, name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
    return f"unknown {kind} {name!r}{hint}"


def _toml_value(raw: str) -> Any:
    """A flag's value parsed as TOML (``0.5``, ``true``, ``["a"]``), else the string itself."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _section_dict(section: Any) -> dict[str, Any]:
    return {
        f.name: list(v) if isinstance(v := getattr(section, f.name), tuple) else v
        for f in dataclasses.fields(section)
    }


def _positive_problems(section: Any, name: str) -> list[str]:
    return [
        f"{name}.{f.name} ({v}) must be greater than 0"
        for f in dataclasses.fields(section)
        if type(v := getattr(section, f.name)) in (int, float) and v <= 0
        and not (f.name.endswith("_port") and v == 0)
    ]


def _port_problems(name: str, port: int, zero_ok: bool = False) -> list[str]:
    low = 0 if zero_ok else 1
    if not low <= port <= 65535:
        return [f"{name} ({port}) must be a TCP/UDP port in {low}..65535"]
    return []


def _address_problems(name: str, value: str, empty_ok: bool) -> list[str]:
    if not value and empty_ok:
        return []
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return [f"{name} ({value!r}) must be an IP address such as 192.0.2.10"]
    return []


def _agent_problems(a: AgentConfig) -> list[str]:
    out = _port_problems("agent.gossip_port", a.gossip_port) + _port_problems("agent.raft_port", a.raft_port)
    if a.gossip_port == a.raft_port:
        out.append(f"agent.gossip_port and agent.raft_port are both {a.gossip_port}; give Raft its own port")
    if a.join_timeout_s <= 0:
        out.append(f"agent.join_timeout_s ({a.join_timeout_s:g}) must be greater than 0")
    out += _address_problems("agent.bind_address", a.bind_address, empty_ok=False)
    out += _address_problems("agent.advertise_address", a.advertise_address, empty_ok=True)
    for label in a.container_labels:
        if "=" not in label:
            out.append(f"agent.container_labels: {label!r} must look like key=value")
    if a.log_level not in LOG_LEVELS:
        out.append(f"agent.log_level ({a.log_level!r}) must be one of {', '.join(LOG_LEVELS)}")
    if len(a.name) > 64 or any(c.isspace() for c in a.name):
        out.append(f"agent.name ({a.name!r}) must be at most 64 characters without spaces")
    for path_field in ("data_dir", "run_dir", "secret_file"):
        if not getattr(a, path_field).startswith("/"):
            out.append(f"agent.{path_field} ({getattr(a, path_field)!r}) must be an absolute path")
    return out


def _api_problems(api: ApiConfig) -> list[str]:
    out: list[str] = []
    for name in ("sub_port", "router_port", "pub_port"):
        out += _port_problems(f"api.{name}", getattr(api, name))
    out += _port_problems("api.metrics_port", api.metrics_port, zero_ok=True)
    out += _port_problems("api.web_port", api.web_port, zero_ok=True)
    if api.web_port and api.web_port == api.metrics_port and api.web_address == api.metrics_address:
        out.append(f"api.web_port and api.metrics_port ({api.web_port}) must differ on one address")
    ports = [api.sub_port, api.router_port, api.pub_port]
    if len(set(ports)) != 3:
        out.append(f"api.sub_port, api.router_port and api.pub_port ({ports}) must all differ")
    for name in ("stats_interval_s", "interface_timeout_s"):
        if getattr(api, name) <= 0:
            out.append(f"api.{name} ({getattr(api, name)}) must be greater than 0")
    if api.max_frame_bytes < 64:
        out.append(f"api.max_frame_bytes ({api.max_frame_bytes}) must be at least 64")
    out += _address_problems("api.bind_address", api.bind_address, empty_ok=False)
    out += _address_problems("api.metrics_address", api.metrics_address, empty_ok=False)
    out += _address_problems("api.web_address", api.web_address, empty_ok=False)
    if api.docker_plugin and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", api.docker_plugin):
        out.append(f"api.docker_plugin ({api.docker_plugin!r}) must be a name of 1-64 letters, digits, '_', '.' or "
                   "'-' (what `docker network create -d NAME` names), or empty for no Docker plugin")
    if not api.docker_plugin_dir.startswith("/"):
        out.append(f"api.docker_plugin_dir ({api.docker_plugin_dir!r}) must be an absolute path "
                   "(dockerd's is /run/docker/plugins)")
    for name in api.web_hosts:
        if not _HOST_NAME.fullmatch(name):
            out.append(f"api.web_hosts: {name!r} must be a DNS name such as meshd.example.org (no port, no scheme)")
    return out


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")
