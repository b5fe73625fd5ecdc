"""Docker's libnetwork remote network driver and IPAM driver, mapped onto meshd's API.

dockerd finds the plugin by its socket, ``/run/docker/plugins/<name>.sock``
(served by :mod:`meshd.plugin._http`), and posts JSON to one path per call.
:class:`DockerDriver` answers them; every write goes through the agent's own
API (:class:`DriverPorts`: the same checks, commits and interface wait as a
scheduler's request), so a container joined by Docker is an endpoint like any
other: in the replicated state, ``meshd top``, events and metrics.

How Docker's calls map (one ``docker network create`` and one ``docker run``):

* ``IpamDriver.RequestPool`` (``--subnet``): a pool id per request; a pool is
  bound to its meshd network by the ``CreateNetwork`` that follows.
* ``IpamDriver.RequestAddress`` for the gateway: the subnet's gateway (meshd's
  default, the first address, or ``--gateway``); nothing is allocated.
* ``NetworkDriver.CreateNetwork``: the meshd network of the same tenant and
  subnet if there is one (any host may have created it: the same command on
  every host maps to one network; other parameters must agree), else a new one
  named by ``-o name=`` or ``<tenant>-<subnet>``.  Docker does not tell a
  driver its network's name.
* ``IpamDriver.RequestAddress`` for a container: a connect of a new endpoint
  (id ``dk`` + 30 random hex digits) to this host, so the address comes from
  the replicated bit vector (two hosts never hand out one address); ``--ip``
  asks for that address.
* ``NetworkDriver.CreateEndpoint``: Docker's endpoint id is mapped to that
  endpoint (found by its address); the reply gives Docker meshd's MAC.
* ``NetworkDriver.Join`` (the sandbox's netns path, ``SandboxKey``): Docker
  creates that netns only when the container starts (runc's prestart hook,
  after Join), so Join returns no interface for Docker to move: the agent
  watches for the netns and builds the interface in it as soon as it exists,
  typically within 0.1 s of the start (``eth0``, ``eth1`` … in the order of
  the container's meshd networks).  A command that needs the network in its
  very first instant must wait for its interface.
* ``Leave`` forgets the netns; ``ReleaseAddress`` disconnects (the address is
  free again); ``DeleteNetwork`` forgets the mapping but keeps the replicated
  network (other hosts may use it: ``meshd network delete`` removes it).

The mapping (pools, networks, endpoints) is this host's and survives an agent
restart in ``<data_dir>/docker-plugin.json``.  Pure: no I/O but through the
ports and the :meth:`DockerDriver.save` callback.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from meshd import state as st
from meshd.api import NetworkCreate, QosSet

log = logging.getLogger("meshd.plugin")

#: Docker's key of ``-o`` options in CreateNetwork and CreateEndpoint
GENERIC = "com.docker.network.generic"
#: the options a RequestAddress carries for a network's gateway
GATEWAY_REQUEST = ("RequestAddressType", "com.docker.network.gateway")
#: the address spaces this IPAM driver reports (CreateNetwork tells by them that the pool is ours)
ADDRESS_SPACES = {"LocalDefaultAddressSpace": "meshd-local", "GlobalDefaultAddressSpace": "meshd-global"}

#: ``-o`` network options, each mapped onto the NETWORK_CREATE field or mode option of the same name
NETWORK_FIELDS = ("name", "tenant", "mode", "mtu", "vni", "egress_kbit", "external")
MODE_OPTIONS = ("parent", "macvlan_mode", "vlan", "ip_range")
#: per-endpoint rate options (``-o`` on the network: every container's default; ``--driver-opt`` on a connect)
QOS_OPTIONS = ("bandwidth_kbit", "burst_bytes", "latency_ms")
_INT_FIELDS = ("mtu", "vni", "egress_kbit", *QOS_OPTIONS)


class DriverError(Exception):
    """A refusal Docker shows its user (the reply's ``Err``): one line that names the fix."""


class DriverPorts(Protocol):
    """What the driver needs of the agent."""

    local_host: str

    def state(self) -> st.NetworkState: ...

    async def request(self, req: Any) -> dict[str, Any]:
        """Run one API request as a scheduler's; raises :class:`DriverError` with the API's message."""

    async def execute(self, command: Any) -> Any:
        """Commit one state command (no interface wait); a refusal is returned as a CommandError."""

    def free_ifname(self, netns: str) -> str: ...

    def attach_when_started(self, endpoint_id: str, network: str, netns: str, ifname: str) -> None:
        """Build the endpoint's interface in the netns at ``netns`` once it exists."""

    def detach(self, endpoint_id: str, network: str) -> None: ...


@dataclass
class Pool:
    subnet: str
    gateway: str | None = None  #: the gateway Docker was given (``--gateway`` or meshd's default)
    network: str | None = None  #: the meshd network, once CreateNetwork bound the pool


@dataclass
class DockerNetwork:
    network: str  #: the meshd network
    qos: dict[str, int] = field(default_factory=dict)  #: default rates of its containers


@dataclass
class DriverBook:
    """This host's mapping between Docker's ids and meshd's (saved as JSON)."""

    pools: dict[str, Pool] = field(default_factory=dict)
    networks: dict[str, DockerNetwork] = field(default_factory=dict)  #: Docker network id → …
    endpoints: dict[str, str] = field(default_factory=dict)  #: Docker endpoint id → meshd endpoint id

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DriverBook:
        return cls(pools={k: Pool(**v) for k, v in data.get("pools", {}).items()},
                   networks={k: DockerNetwork(**v) for k, v in data.get("networks", {}).items()},
                   endpoints={str(k): str(v) for k, v in data.get("endpoints", {}).items()})


class DockerDriver:
    """Answers dockerd's remote network and IPAM driver calls; see the module docstring."""

    def __init__(self, ports: DriverPorts, book: DriverBook | None = None,
                 save: Callable[[DriverBook], None] = lambda book: None) -> None:
        self.ports = ports
        self.book = book or DriverBook()
        self._save = save
        self._calls: dict[str, Callable[[dict[str, Any]], Any]] = {
            "/Plugin.Activate": lambda r: {"Implements": ["NetworkDriver", "IpamDriver"]},
            "/NetworkDriver.GetCapabilities": lambda r: {"Scope": "local", "ConnectivityScope": "global"},
            "/NetworkDriver.CreateNetwork": self.create_network,
            "/NetworkDriver.DeleteNetwork": self.delete_network,
            "/NetworkDriver.CreateEndpoint": self.create_endpoint,
            "/NetworkDriver.EndpointOperInfo": self.endpoint_info,
            "/NetworkDriver.DeleteEndpoint": self.delete_endpoint,
            "/NetworkDriver.Join": self.join,
            "/NetworkDriver.Leave": self.leave,
            "/NetworkDriver.DiscoverNew": lambda r: {},
            "/NetworkDriver.DiscoverDelete": lambda r: {},
            "/NetworkDriver.ProgramExternalConnectivity": lambda r: {},
            "/NetworkDriver.RevokeExternalConnectivity": lambda r: {},
            "/IpamDriver.GetCapabilities": lambda r: {"RequiresMACAddress": False, "RequiresRequestReplay": False},
            "/IpamDriver.GetDefaultAddressSpaces": lambda r: dict(ADDRESS_SPACES),
            "/IpamDriver.RequestPool": self.request_pool,
            "/IpamDriver.ReleasePool": self.release_pool,
            "/IpamDriver.RequestAddress": self.request_address,
            "/IpamDriver.ReleaseAddress": self.release_address,
        }

    async def call(self, path: str, body: Any) -> dict[str, Any]:
        """The reply to one call: its result, or :func:`refusal`.  Never raises (but Cancelled)."""
        handler = self._calls.get(path)
        if handler is None:
            return refusal(path, f"meshd's Docker plugin does not implement {path}")
        if not isinstance(body, dict):
            body = {}
        try:
            result = handler(body)
            if hasattr(result, "__await__"):
                result = await result
        except DriverError as exc:
            log.info("docker call refused call=%s error=%s", path, exc)
            return refusal(path, str(exc))
        except (KeyError, TypeError, ValueError) as exc:
            return refusal(path, f"meshd's Docker plugin could not read {path}: {exc!r}")
        return result

    # --- IPAM -------------------------------------------------------------------------

    def request_pool(self, r: dict[str, Any]) -> dict[str, Any]:
        if r.get("V6"):
            raise DriverError("meshd networks are IPv4 only: drop --ipv6")
        if r.get("SubPool"):
            raise DriverError("meshd does not take --ip-range from Docker: give the network -o ip_range=CIDR")
        pool = str(r.get("Pool") or "")
        if not pool:
            raise DriverError("meshd needs the network's subnet: add --subnet CIDR (e.g. --subnet 10.1.0.0/24)")
        try:
            subnet = str(ipaddress.IPv4Network(pool, strict=True))
        except ValueError as exc:
            raise DriverError(f"--subnet {pool} is not an IPv4 network ({exc}): e.g. --subnet 10.1.0.0/24") from None
        pool_id = f"meshd-{secrets.token_hex(8)}"
        self.book.pools[pool_id] = Pool(subnet=subnet)
        self._save(self.book)
        return {"PoolID": pool_id, "Pool": subnet, "Data": {}}

    def release_pool(self, r: dict[str, Any]) -> dict[str, Any]:
        if self.book.pools.pop(str(r.get("PoolID")), None) is not None:
            self._save(self.book)
        return {}

    async def request_address(self, r: dict[str, Any]) -> dict[str, Any]:
        pool = self._pool(r)
        net = ipaddress.IPv4Network(pool.subnet)
        options = r.get("Options") or {}
        wanted = str(r.get("Address") or "") or None
        if options.get(GATEWAY_REQUEST[0]) == GATEWAY_REQUEST[1]:
            gateway = wanted or str(net.network_address + 1)
            pool.gateway = gateway
            self._save(self.book)
            return {"Address": f"{gateway}/{net.prefixlen}", "Data": {}}
        if pool.network is None:
            raise DriverError(f"pool {pool.subnet} is not bound to a meshd network yet: create the Docker network "
                              "with -d and --ipam-driver both naming meshd's plugin")
        qos = st.qos_with_defaults(*self._rates(pool.network))
        endpoint_id = "dk" + secrets.token_hex(15)
        result = await self.ports.execute(st.Connect(endpoint_id=endpoint_id, network=pool.network,
                                                     host=self.ports.local_host, ip=wanted, mac=None, qos=qos))
        if isinstance(result, st.CommandError):
            raise DriverError(result.message)
        return {"Address": f"{result.ip}/{net.prefixlen}", "Data": {}}

    async def release_address(self, r: dict[str, Any]) -> dict[str, Any]:
        pool = self._pool(r)
        address = str(r.get("Address") or "").split("/")[0]
        if pool.network is None or address == pool.gateway:
            return {}
        for ep in self.ports.state().endpoints(network=pool.network):
            if ep.ip == address and ep.host == self.ports.local_host:
                self.ports.detach(ep.endpoint_id, pool.network)
                result = await self.ports.execute(st.Disconnect(endpoint_id=ep.endpoint_id, network=pool.network))
                if isinstance(result, st.CommandError) and result.code is not st.ErrorCode.UNKNOWN_ENDPOINT:
                    raise DriverError(result.message)
        return {}

    def _pool(self, r: dict[str, Any]) -> Pool:
        pool = self.book.pools.get(str(r.get("PoolID")))
        if pool is None:
            raise DriverError(f"unknown pool {r.get('PoolID')!r}: this agent did not hand it out (or its "
                              "docker-plugin.json was lost); recreate the Docker network")
        return pool

    def _rates(self, network: str, extra: Mapping[str, Any] | None = None) -> tuple[int, int, int]:
        rates: dict[str, int] = {}
        for dn in self.book.networks.values():
            if dn.network == network:
                rates.update(dn.qos)
        rates.update(_ints(extra or {}, QOS_OPTIONS))
        return rates.get("bandwidth_kbit", 0), rates.get("burst_bytes", 0), rates.get("latency_ms", 0)

    # --- networks ---------------------------------------------------------------------

    async def create_network(self, r: dict[str, Any]) -> dict[str, Any]:
        docker_id = str(r["NetworkID"])
        opts = {str(k): str(v) for k, v in ((r.get("Options") or {}).get(GENERIC) or {}).items()}
        unknown = sorted(set(opts) - {*NETWORK_FIELDS, *MODE_OPTIONS, *QOS_OPTIONS})
        if unknown:
            raise DriverError(f"unknown option(s) {', '.join(unknown)}: meshd's network options are "
                              f"{', '.join((*NETWORK_FIELDS, *MODE_OPTIONS, *QOS_OPTIONS))}")
        data = r.get("IPv4Data") or []
        if r.get("IPv6Data"):
            raise DriverError("meshd networks are IPv4 only: drop --ipv6")
        if len(data) != 1:
            raise DriverError("a meshd network has exactly one IPv4 subnet: give one --subnet")
        space, subnet = data[0].get("AddressSpace"), str(data[0].get("Pool"))
        if space not in ADDRESS_SPACES.values():
            raise DriverError("meshd's network driver takes addresses from meshd's replicated pools only: add "
                              "--ipam-driver with the same plugin name as -d")
        gateway = str(data[0].get("Gateway") or "").split("/")[0] or None
        fields = _ints(opts, _INT_FIELDS)
        tenant = opts.get("tenant", "default")
        mode = opts.get("mode", st.Mode.VXLAN.value)
        options = {k: opts[k] for k in MODE_OPTIONS if k in opts}
        if mode == st.Mode.DHCP.value:
            raise DriverError("a dhcp network cannot be used through Docker's driver: its address is leased inside "
                              "the container's netns, which Docker creates only after asking for the address; "
                              "use container labels (meshd.network=…) or the CNI plugin for dhcp networks")
        name = self._existing(tenant, subnet, mode, gateway, opts)
        if name is None:
            name = opts.get("name") or f"{tenant}-{subnet.replace('/', '-')}"
            modes = [m.value for m in st.Mode if m is not st.Mode.DHCP]
            if mode not in modes:
                raise DriverError(f"unknown mode {mode!r}: use -o mode= one of {', '.join(modes)}")
            req = NetworkCreate(name=name, subnet=subnet, tenant=tenant, gateway=gateway, mode=st.Mode(mode),
                                mtu=fields.get("mtu"), vni=fields.get("vni"), egress_kbit=fields.get("egress_kbit", 0),
                                external=opts.get("external", "false").lower() in ("1", "true", "yes"),
                                labels={"created_by": "docker"}, options=options)
            try:
                await self.ports.request(req)
            except DriverError:
                if self._existing(tenant, subnet, mode, gateway, opts) is None:  # not a race with another host
                    raise
        pool = next((p for p in self.book.pools.values() if p.subnet == subnet and p.network is None), None)
        if pool is not None:
            pool.network = name
        self.book.networks[docker_id] = DockerNetwork(network=name, qos=_ints(opts, QOS_OPTIONS))
        self._save(self.book)
        log.info("docker network mapped docker_id=%s network=%s", docker_id[:12], name)
        return {}

    def _existing(self, tenant: str, subnet: str, mode: str, gateway: str | None,
                  opts: Mapping[str, str]) -> str | None:
        """The meshd network this Docker network is (same tenant and subnet), or None; one whose other
        parameters disagree is refused."""
        for info in self.ports.state().networks():
            n = info.network
            if n.tenant != tenant or n.subnet != subnet:
                continue
            wrong = []
            if n.mode.value != mode:
                wrong.append(f"mode {n.mode.value}")
            if gateway is not None and n.gateway != gateway:
                wrong.append(f"gateway {n.gateway}")
            if "name" in opts and opts["name"] != n.name:
                wrong.append(f"name {n.name}")
            for key in MODE_OPTIONS:
                if key in opts and n.options.get(key) != opts[key]:
                    wrong.append(f"{key} {n.options.get(key, '(unset)')}")
            if wrong:
                raise DriverError(f"meshd network {n.name} (tenant {tenant}, subnet {subnet}) exists with "
                                  f"{', '.join(wrong)}: use the same options, or another subnet")
            return n.name
        return None

    def delete_network(self, r: dict[str, Any]) -> dict[str, Any]:
        dn = self.book.networks.pop(str(r.get("NetworkID")), None)
        if dn is not None:
            self._save(self.book)
            log.info("docker network removed docker_id=%s network=%s (the meshd network is kept)",
                     str(r.get("NetworkID"))[:12], dn.network)
        return {}

    def _network(self, r: dict[str, Any]) -> str:
        dn = self.book.networks.get(str(r.get("NetworkID")))
        if dn is None:
            raise DriverError(f"Docker network {str(r.get('NetworkID'))[:12]} is unknown to meshd on this host "
                              "(created while another agent served the plugin?): recreate it")
        return dn.network

    # --- endpoints --------------------------------------------------------------------

    async def create_endpoint(self, r: dict[str, Any]) -> dict[str, Any]:
        network = self._network(r)
        iface = r.get("Interface") or {}
        address = str(iface.get("Address") or "").split("/")[0]
        if not address:
            raise DriverError("Docker gave no address: the network must use meshd's IPAM driver "
                              "(--ipam-driver with the plugin's name)")
        ep = next((e for e in self.ports.state().endpoints(network=network)
                   if e.ip == address and e.host == self.ports.local_host), None)
        if ep is None:
            raise DriverError(f"{address} is not allocated to this host in meshd network {network}: "
                              "recreate the container")
        mac = str(iface.get("MacAddress") or "")
        if mac and mac.lower() != ep.mac:
            raise DriverError(f"meshd gives {address} the MAC {ep.mac}: drop --mac-address")
        opts = {k: v for k, v in (r.get("Options") or {}).items() if k in QOS_OPTIONS}  # --driver-opt
        rates = _ints({str(k): str(v) for k, v in opts.items()}, QOS_OPTIONS)
        if rates:
            rate, burst, latency = self._rates(network, rates)
            await self.ports.request(QosSet(container_id=ep.endpoint_id, network=network, bandwidth_kbit=rate,
                                            burst_bytes=burst, latency_ms=latency))
        self.book.endpoints[str(r["EndpointID"])] = ep.endpoint_id
        self._save(self.book)
        return {} if mac else {"Interface": {"MacAddress": ep.mac}}

    def endpoint_info(self, r: dict[str, Any]) -> dict[str, Any]:
        endpoint_id = self.book.endpoints.get(str(r.get("EndpointID")), "")
        return {"Value": {"meshd.endpoint_id": endpoint_id}}

    def delete_endpoint(self, r: dict[str, Any]) -> dict[str, Any]:
        if self.book.endpoints.pop(str(r.get("EndpointID")), None) is not None:
            self._save(self.book)
        return {}

    async def join(self, r: dict[str, Any]) -> dict[str, Any]:
        network = self._network(r)
        endpoint_id = self.book.endpoints.get(str(r.get("EndpointID")))
        ep = self.ports.state().endpoint(endpoint_id, network) if endpoint_id else None
        if endpoint_id is None or ep is None:
            raise DriverError(f"endpoint {str(r.get('EndpointID'))[:12]} is unknown to meshd on this host: "
                              "recreate the container")
        netns = str(r.get("SandboxKey") or "")
        if not netns.startswith("/") or "/../" in f"{netns}/":
            raise DriverError(f"Docker gave no usable sandbox key ({netns!r}) for endpoint "
                              f"{str(r.get('EndpointID'))[:12]}")
        # the sandbox's netns appears only when the container starts (runc's prestart hook): the
        # agent builds the interface in it then (Docker moves no interface of ours)
        self.ports.attach_when_started(endpoint_id, network, netns, self.ports.free_ifname(netns))
        return {"DisableGatewayService": True}

    def leave(self, r: dict[str, Any]) -> dict[str, Any]:
        network = self._network(r)
        endpoint_id = self.book.endpoints.get(str(r.get("EndpointID")))
        if endpoint_id is not None:
            self.ports.detach(endpoint_id, network)
        return {}


def refusal(path: str, message: str) -> dict[str, Any]:
    """A refusal Docker shows its user: network driver replies carry it in ``Err``, IPAM replies in ``Error``
    (libnetwork's two remote APIs differ; an IPAM reply without ``Error`` reads as "No address returned")."""
    return {"Error" if path.startswith("/IpamDriver.") else "Err": message}


def _ints(opts: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, int]:
    out = {}
    for key in keys:
        if key in opts:
            try:
                out[key] = int(str(opts[key]))
            except ValueError:
                raise DriverError(f"option {key}={opts[key]!r} is not an integer") from None
    return out
