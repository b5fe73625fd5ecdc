"""The replicated network state machine.

Theory of operation
-------------------
:class:`NetworkState` is what the Raft log is applied to.  It is pure: no I/O,
no clock, no randomness, no iteration over unordered sets where order could
leak into the state; the same commands at the same indices give the same
state (and the same :meth:`NetworkState.state_hash`) on every replica.

Two faces, one behaviour:

* typed -- :meth:`NetworkState.execute` takes a command dataclass and returns
  its result dataclass or a :class:`CommandError`;
* bytes -- the consensus state-machine interface: :meth:`apply` decodes a log
  entry, executes it and encodes the outcome; :meth:`snapshot` and
  :meth:`restore` move the whole state.

Every handler validates everything first and only then mutates, so a
rejected command changes nothing (only the applied index advances: the log
position is consumed).  An index at or below the last applied one is refused
(STALE_INDEX): a replayed entry can never apply twice.

Tables (see ``_tables``): networks by name, each with its IP bit vector and
its endpoints by container id; the VNI bit vector; container id -> its
networks (sorted); host -> network -> endpoint count; policies by id; stale
hosts; interned QoS tuples; a bounded change log of
``(index, kind, ...)`` tuples that :meth:`changes_since` turns into
:class:`Change` records for the reconciler.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import re
from collections.abc import Callable, Container, Generator, Iterable
from typing import Any

from meshd import wire

from . import _snapshot
from ._bitvec import BitVector
from ._codec import decode_command, encode_result
from ._commands import (
    COMMAND_TYPES,
    AddPolicy,
    Command,
    CommandError,
    Connect,
    CreateNetwork,
    DeleteNetwork,
    Disconnect,
    ErrorCode,
    MarkHostStale,
    MoveEndpoint,
    PublishService,
    Reject,
    RemoveHost,
    RemovePolicy,
    Result,
    SetQos,
    SetServiceHealth,
    UnpublishService,
    UpdateNetwork,
)
from ._epcmds import EndpointCommands
from ._netcmds import NetworkCommands
from ._svccmds import ServiceCommands
from ._tables import HOST, IP, ChangeRow, Net, Svc, TenantRanges, gc_paused, qos_of, run_steps
from ._types import (
    NO_QOS,
    VNI_MAX,
    Change,
    ChangeSet,
    Endpoint,
    Mode,
    Network,
    NetworkInfo,
    Policy,
    ServiceEntry,
    StateStatus,
    derived_mac,
    fast_constructor,
    format_ipv4,
    format_mac,
)

_new_endpoint = fast_constructor(Endpoint)

#: how many changes :meth:`NetworkState.changes_since` can reach back by default
DEFAULT_CHANGE_LOG = 100_000


#: networks at least this big get their endpoint dict built by :meth:`NetworkState.warm`
WARM_MIN_ENDPOINTS = 4096

_HEX = re.compile("[0-9a-f]+")  # container ids, as Docker writes them


class NetworkState(NetworkCommands, EndpointCommands, ServiceCommands):
    """Tenant networks, their VNI and IP bit vectors, endpoints and policies.

    Args:
      change_log_size: how many recent changes to keep for :meth:`changes_since`.
    """

    def __init__(self, *, change_log_size: int = DEFAULT_CHANGE_LOG) -> None:
        self._change_log_size = change_log_size
        self._clear()
        self.applied = 0
        self.rejected = 0
        self.undecodable = 0
        self._handlers: dict[type, Callable[[Any, int], Result]] = {
            CreateNetwork: self._on_create_network,
            DeleteNetwork: self._on_delete_network,
            UpdateNetwork: self._on_update_network,
            Connect: self._on_connect,
            Disconnect: self._on_disconnect,
            MoveEndpoint: self._on_move_endpoint,
            SetQos: self._on_set_qos,
            AddPolicy: self._on_add_policy,
            RemovePolicy: self._on_remove_policy,
            MarkHostStale: self._on_mark_host_stale,
            RemoveHost: self._on_remove_host,
            PublishService: self._on_publish_service,
            UnpublishService: self._on_unpublish_service,
            SetServiceHealth: self._on_set_service_health,
        }

    def _clear(self) -> None:
        self.last_index = 0
        self._nets: dict[str, Net] = {}
        self._ranges = TenantRanges()
        self._vnis = BitVector(VNI_MAX + 1)
        self._vnis.set(0)
        self._vnis.cursor = 1
        #: the container index (``_containers``, ``_named``: see ``Tables``); None until first used after a restore
        self._by_container: dict[str, tuple[str, ...]] | None = {}
        self._by_name: dict[str, dict[str, int]] | None = {}
        self._by_host: dict[str, dict[str, int]] | None = {}
        self._policies: dict[str, Policy] = {}
        self._stale: set[str] = set()
        #: equal QoS values share one object (memory, and fast snapshots)
        self._qos_pool: dict[tuple[int, int, int], tuple[int, int, int]] = {}
        #: network -> service name -> container id -> (port, weight, ttl_s, check, interval_s, healthy)
        self._services: dict[str, dict[str, dict[str, Svc]]] = {}
        self._changes: collections.deque[ChangeRow] = collections.deque(maxlen=self._change_log_size)
        #: changes after this index are all in ``_changes`` (restore resets it)
        self._changes_floor = 0

    # --- typed face ----------------------------------------------------------

    def execute(self, command: Any, index: int) -> Result | CommandError:
        """Apply one command at log ``index``.

        Returns:
          the command's result record, or a :class:`CommandError` when it was
          rejected (then nothing changed but :attr:`last_index`).

        Raises:
          TypeError: only if a field does not have its annotated type at all
            (e.g. a list for a name); commands decoded by :func:`meshd.state.decode_command`
            or built by typed callers never do.
        """
        if index <= self.last_index:
            self.rejected += 1
            return CommandError(
                code=ErrorCode.STALE_INDEX,
                message=f"log index {index} is not after the last applied index {self.last_index}: "
                "entries apply once, in order",
            )
        self.last_index = index
        handler = self._handlers.get(type(command))
        if handler is None:
            self.rejected += 1
            return CommandError(
                code=ErrorCode.BAD_COMMAND,
                message=f"{type(command).__qualname__} is not a state command: use one of "
                f"{', '.join(t.__name__ for t in COMMAND_TYPES)}",
            )
        try:
            result = handler(command, index)
        except Reject as exc:
            self.rejected += 1
            return exc.error()
        self.applied += 1
        return result

    # --- the consensus state-machine interface -------------------------------

    def apply(self, index: int, command: bytes) -> bytes:
        """Decode a log entry, execute it, return the encoded result or error."""
        cmd: Command | wire.DecodeError
        try:
            cmd = decode_command(command)
        except wire.DecodeError as exc:
            cmd = exc
        if not isinstance(cmd, COMMAND_TYPES):
            self.undecodable += 1
            what = cmd if isinstance(cmd, Exception) else f"a {type(cmd).__qualname__} message"
            if index > self.last_index:
                self.last_index = index
            result: Result | CommandError = CommandError(
                code=ErrorCode.BAD_COMMAND, message=f"log entry {index} is not a state command ({what}); it was skipped"
            )
        else:
            result = self.execute(cmd, index)
        return encode_result(result)

    def snapshot(self) -> bytes:
        """The whole state as versioned msgpack (see ``_snapshot``)."""
        return _snapshot.dump(self)

    def restore(self, data: bytes) -> None:
        """Replace the whole state with a snapshot (any supported format version).

        Raises:
          ValueError: the snapshot is corrupt or of an unknown version; the
            state is then left as it was.
        """
        fresh = NetworkState(change_log_size=self._change_log_size)
        _snapshot.load(fresh, data)
        for name in ("last_index", "_nets", "_ranges", "_vnis", "_by_container", "_by_host", "_by_name", "_policies",
                     "_stale", "_qos_pool", "_services"):
            setattr(self, name, getattr(fresh, name))
        self._changes.clear()
        self._changes_floor = self.last_index

    def warm(self, *, every_network: bool = False) -> None:
        """Run :meth:`warm_steps` to its end."""
        with gc_paused():
            run_steps(self.warm_steps(every_network=every_network))

    def warm_steps(self, *, every_network: bool = False) -> Generator[None, None, None]:
        """Build the indexes that a restore leaves to first use and that would make a first
        command slow, in steps of a millisecond or two: the container and name indexes, and the
        endpoint dict of each network of at least :data:`WARM_MIN_ENDPOINTS` endpoints (a smaller
        one builds its dict at first use in about a millisecond), or of every network with
        ``every_network``, which also builds the host index (endpoint commands never need it;
        queries and the host commands build it).

        The Raft driver runs these steps on its event loop when the node starts, before its first
        apply (the optional ``warm_steps`` of ``consensus.StateMachine``), handling messages between
        them: a restarting node builds the indexes while it waits for an election. Only applies
        change the state, and they wait for the last step; a query between two steps that needs an
        index builds it at once, and the steps then keep that one.
        """
        yield from self._index_containers_steps()
        for net in list(self._nets.values()):
            if every_network or net.count >= WARM_MIN_ENDPOINTS:
                yield from net.index_steps()
        if every_network:
            self._hosts  # noqa: B018  (the property builds the index)

    # --- queries -------------------------------------------------------------

    def network(self, name: str) -> NetworkInfo | None:
        net = self._nets.get(name)
        if net is None:
            return None
        return self._info(net, [h for h, nets in self._hosts.items() if name in nets])

    def network_spec(self, name: str) -> Network | None:
        """The definition of network ``name`` alone (a lookup; :meth:`network` also collects its hosts)."""
        net = self._nets.get(name)
        return None if net is None else net.net

    def mode_of(self, network: str) -> Mode | None:
        """The mode of ``network`` (a lookup; :meth:`network` also collects its hosts), or None."""
        net = self._nets.get(network)
        return None if net is None else net.net.mode

    def networks(self, *, tenant: str | None = None) -> tuple[NetworkInfo, ...]:
        """Every network (of ``tenant``), by name, with used/free address counts and hosts."""
        hosts: dict[str, list[str]] = collections.defaultdict(list)
        for host, nets in self._hosts.items():
            for name in nets:
                hosts[name].append(host)
        return tuple(
            self._info(net, hosts[name])
            for name, net in sorted(self._nets.items())
            if tenant is None or net.net.tenant == tenant
        )

    def _info(self, net: Net, hosts: list[str]) -> NetworkInfo:
        n = net.net
        if n.labels or n.options:  # the mutable fields: hand out copies
            n = dataclasses.replace(n, labels=dict(n.labels), options=dict(n.options))
        return NetworkInfo(n, net.count, net.vec.free, tuple(sorted(hosts)))

    def endpoints(self, *, host: str | None = None, network: str | None = None) -> tuple[Endpoint, ...]:
        """Endpoints, optionally only those on ``host`` and/or in ``network``.

        Ordered by network name, then connection order.
        """
        if host is not None:
            names = sorted(self._hosts.get(host, ()))
            if network is not None:
                names = [network] if network in names else []
            return tuple(
                self._endpoint(self._nets[n], cid, ep)
                for n in names
                for cid, ep in self._nets[n].eps.items()
                if ep[HOST] == host
            )
        names = sorted(self._nets) if network is None else [network] if network in self._nets else []
        return tuple(self._endpoint(self._nets[n], cid, ep) for n in names for cid, ep in self._nets[n].eps.items())

    def endpoints_on(self, network: str, hosts: Container[str]) -> tuple[Endpoint, ...]:
        """Endpoints of ``network`` on any of ``hosts``, in connection order.

        The host test runs on the stored rows, before an :class:`Endpoint` is
        built, so asking for the few endpoints of live hosts in a network that
        holds many others costs one cheap loop, not their formatting.
        """
        net = self._nets.get(network)
        if net is None:
            return ()
        return tuple(self._endpoint(net, cid, ep) for cid, ep in net.eps.items() if ep[HOST] in hosts)

    def find_endpoints(self, ref: str, *, min_prefix: int = 1) -> tuple[str, ...]:
        """The endpoint ids ``ref`` names, for commands that name a container: ``ref`` itself
        when it is one; else every container of that name; else every id that begins with it.

        Ids are hexadecimal (Docker's), so only a ``ref`` of at least ``min_prefix`` hex digits is
        taken as a prefix: a new id such as ``web-1`` never resolves to a container ``web-10``.
        Exact ids and names cost a lookup; a prefix a scan of the container ids (milliseconds per
        hundred thousand).
        """
        if ref in self._containers:
            return (ref,)
        named = self._named.get(ref)
        if named:
            return tuple(sorted(named))
        if len(ref) < max(1, min_prefix) or not _HEX.fullmatch(ref):
            return ()
        return tuple(sorted(cid for cid in self._containers if cid.startswith(ref)))

    def networks_of(self, endpoint_id: str) -> tuple[str, ...]:
        """The networks ``endpoint_id`` is connected to, by name (a lookup)."""
        return self._containers.get(endpoint_id, ())

    def endpoint(self, endpoint_id: str, network: str) -> Endpoint | None:
        net = self._nets.get(network)
        if net is None:
            return None
        ep = net.eps.get(endpoint_id)
        return None if ep is None else self._endpoint(net, endpoint_id, ep)

    def _endpoint(self, net: Net, cid: str, ep: Any) -> Endpoint:
        host, off, mac, qos, name = ep
        ip = net.base + off
        mac = derived_mac(ip) if mac is None else mac
        return _new_endpoint(
            cid, net.net.name, host, format_ipv4(ip), format_mac(mac),
            NO_QOS if qos is None else qos_of(qos), host in self._stale, name,
        )  # fmt: skip

    def policies(self, *, network: str | None = None) -> tuple[Policy, ...]:
        """Policies (touching ``network``), in the order they were added."""
        return tuple(p for p in self._policies.values() if network is None or network in (p.network, p.peer))

    def services(
        self, *, tenant: str | None = None, network: str | None = None, name: str | None = None
    ) -> tuple[ServiceEntry, ...]:
        """Service entries (of ``tenant``, ``network``, named ``name``), by network, name, then publish order."""
        found = []
        nets = sorted(self._services) if network is None else [network] if network in self._services else []
        for netname in nets:
            net = self._nets[netname]
            if tenant is not None and net.net.tenant != tenant:
                continue
            by_name = self._services[netname]
            names = sorted(by_name) if name is None else [name.lower()] if name.lower() in by_name else []
            for svc in names:
                for cid, (port, weight, ttl, check, interval, healthy) in by_name[svc].items():
                    ep = net.eps[cid]
                    found.append(ServiceEntry(
                        svc, netname, net.net.tenant, cid, ep[HOST], format_ipv4(net.base + ep[IP]), port, weight,
                        ttl, check, interval, healthy,
                    ))  # fmt: skip
        return tuple(found)

    def hosts(self) -> tuple[str, ...]:
        """Hosts that have endpoints, sorted."""
        return tuple(sorted(self._hosts))

    def stale_hosts(self) -> tuple[str, ...]:
        return tuple(sorted(self._stale))

    def changes_since(self, index: int) -> ChangeSet:
        """What changed after log ``index`` (see :class:`ChangeSet` for ``complete``)."""
        complete = index >= self._changes_floor
        if self._changes and len(self._changes) == self._changes.maxlen:
            complete = complete and index >= self._changes[0][0]
        found = []
        for t in reversed(self._changes):  # newest first: costs only what is returned
            if t[0] <= index:
                break
            found.append(Change(*t))
        found.reverse()
        return ChangeSet(tuple(found), self.last_index, complete)

    def status(self) -> StateStatus:
        return StateStatus(
            last_index=self.last_index,
            networks=len(self._nets),
            endpoints=sum(n.count for n in self._nets.values()),
            hosts=len(self._hosts),
            stale_hosts=len(self._stale),
            policies=len(self._policies),
            vnis_used=self._vnis.count - 1,
            commands_applied=self.applied,
            commands_rejected=self.rejected,
            undecodable_commands=self.undecodable,
        )

    def state_hash(self) -> str:
        """SHA-256 of the snapshot: equal on replicas that applied the same log."""
        return hashlib.sha256(self.snapshot()).hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NetworkState):
            return NotImplemented
        return self.snapshot() == other.snapshot()

    __hash__ = None  # type: ignore[assignment]  # mutable, so unhashable (typeshed wants a method here)

    # --- helpers for the handlers --------------------------------------------

    def _net(self, name: str) -> Net:
        net = self._nets.get(name)
        if net is None:
            known = ", ".join(sorted(self._nets)[:10]) or "none yet"
            raise Reject(
                ErrorCode.UNKNOWN_NETWORK,
                f"network {name!r} does not exist (known: {known}): create it first or check the name",
            )
        return net


def replay(commands: Iterable[Any], *, first_index: int = 1) -> NetworkState:
    """A fresh state with ``commands`` executed at consecutive indices (for tools and tests)."""
    state = NetworkState()
    for i, cmd in enumerate(commands, first_index):
        state.execute(cmd, i)
    return state
