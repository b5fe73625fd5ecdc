"""The internal tables of the state machine (compact, mutable, package-private).

Public queries never hand these out; they build the frozen records of
:mod:`meshd.state._types` from them.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import functools
import gc
import itertools
import operator
from collections.abc import Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Final, Protocol, TypeVar

from ._bitvec import BitVector
from ._options import ip_range
from ._types import NO_QOS, ChangeKind, Network, Policy, Qos

K = TypeVar("K")
V = TypeVar("V")

#: One attachment is a plain tuple ``(host, ip, mac, qos)`` (container id and
#: network are its keys):
#:
#: * ``host``: str;
#: * ``ip``: offset of the IP inside the subnet (its slot in the bit vector);
#: * ``mac``: the explicitly requested MAC as an int, or None when derived;
#: * ``qos``: ``(rate_kbit, burst_bytes, latency_ms)``, or None when unlimited.
#:
#: Plain tuples of atomic values, not named tuples or dataclasses, because
#: CPython's cyclic GC stops tracking such tuples: a million endpoints then
#: cost the collector nothing, and building them in bulk is twice as fast.
QosKey = tuple[int, int, int] | None
#: ``name`` is the container's name, or None when it has none
Ep = tuple[str, int, int | None, QosKey, str | None]
HOST: Final = 0
IP: Final = 1
MAC: Final = 2
QOS: Final = 3
NAME: Final = 4
_NAME_OF = operator.itemgetter(NAME)
_HOST_OF = operator.itemgetter(HOST)


#: One service entry: ``(port, weight, ttl_s, check, interval_s, healthy)``; the table is
#: network -> service name -> container id -> Svc (the address is the endpoint's).
Svc = tuple[int, int, int, str, int, bool]


def qos_key(qos: Qos) -> QosKey:
    """The internal form of a (validated) QoS value."""
    key = (qos.rate_kbit, qos.burst_bytes, qos.latency_ms)
    return None if key == (0, 0, 0) else key


@functools.lru_cache(maxsize=1024)
def qos_of(key: QosKey) -> Qos:
    """The public record of an internal QoS value (cached: queries build many)."""
    return NO_QOS if key is None else Qos(*key)


#: entries per step of fill_in_steps: a millisecond or two of C each
_CHUNK = 1 << 13

R = TypeVar("R")


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector paused for the block (process-wide).

    A dump or a load of a million endpoints allocates millions of objects that
    form no cycles; the collections those allocations trigger walk the whole
    heap again and again. Measured with 1M allocations (the workload of
    ``tools.bench.state``, CPU seconds on the 2-core VM): dump 0.81 → 0.38 s,
    load 0.97 → 0.86 s. Only the thread that found the collector enabled
    enables it again, so a dump in the Raft driver's worker thread and a load
    at the same time leave it enabled once both are done; meanwhile other
    threads allocate without cyclic collection for well under a second.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def fill_in_steps(out: dict[K, V], pairs: Iterable[tuple[K, V]]) -> Iterator[None]:
    """Add ``pairs`` to ``out`` by updates of :data:`_CHUNK` entries, yielding after each.

    ``NetworkState.warm_steps`` builds its million-entry dicts this way, so the
    Raft driver that runs the steps on its event loop handles messages between
    them (one ``dict()`` call over a million pairs takes a quarter of a second).
    """
    it = iter(pairs)
    while True:
        before = len(out)
        out.update(itertools.islice(it, _CHUNK))
        if len(out) - before < _CHUNK:  # a short chunk (or a repeated key in it): see whether more follow
            rest = list(itertools.islice(it, 1))
            if not rest:
                return
            out.update(rest)
        yield


def run_steps(steps: Generator[None, None, R]) -> R:
    """Run a step generator to its end and return its value (the synchronous path)."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            value: R = stop.value
            return value


class Columns(Protocol):
    """A network's endpoints as a snapshot holds them (``_snapshot``), not yet indexed."""

    #: how many endpoints
    count: int

    def ids(self) -> list[str]:
        """The container ids, in connection order."""

    def build_steps(self) -> Generator[None, None, tuple[dict[str, Ep], dict[int, str]]]:
        """``(eps, macs)`` as :class:`Net` keeps them, built in steps (see :func:`fill_in_steps`)."""

    def named(self) -> list[tuple[str, str]]:
        """``(container id, name)`` of the endpoints that have a name."""

    def host_counts(self) -> dict[str, int]:
        """Host -> how many of the endpoints it has."""


class Net:
    """A network with its IP bit vector and its endpoints (container id -> Ep).

    A network restored from a snapshot keeps its endpoints as the snapshot's
    :class:`Columns` until something reads :attr:`eps` or :attr:`macs`: only then
    are the per-endpoint tuples and the dict built (see ``docs/state.md``,
    "Restore"), so a restart pays for the networks it touches.
    """

    __slots__ = ("net", "base", "prefix", "gw_off", "vec", "_eps", "_macs", "pool", "cols")

    def __init__(self, net: Network, base: int, prefix: int, gw_off: int, vec: BitVector) -> None:
        self.net = net
        self.base = base
        self.prefix = prefix
        self.gw_off = gw_off
        self.vec = vec
        self._eps: dict[str, Ep] = {}
        self._macs: dict[int, str] = {}
        #: the endpoints still as a snapshot's columns (``_eps``/``_macs`` are then empty), or None
        self.cols: Columns | None = None
        #: the slots addresses are handed out from (the ``ip_range`` option), or None: all
        self.pool: tuple[int, int] | None = None
        if "ip_range" in net.options:
            self.pool = ip_range(net.name, net.options["ip_range"], base, prefix)

    @property
    def eps(self) -> dict[str, Ep]:
        """Container id -> :data:`Ep`, in connection order."""
        if self.cols is not None:
            self._index()
        return self._eps

    @property
    def macs(self) -> dict[int, str]:
        """Explicit MAC -> container id (derived MACs are unique by IP)."""
        if self.cols is not None:
            self._index()
        return self._macs

    def _index(self) -> None:
        with gc_paused():
            run_steps(self.index_steps())

    def index_steps(self) -> Generator[None, None, None]:
        """Build the endpoint dicts from :attr:`cols` in steps (nothing to do once built)."""
        cols = self.cols
        if cols is None:
            return
        eps, macs = yield from cols.build_steps()
        if self.cols is cols:  # not built meanwhile (a query between two steps of warm_steps)
            self._eps, self._macs = eps, macs
            self.cols = None

    @property
    def count(self) -> int:
        """How many endpoints (without indexing them)."""
        return len(self._eps) if self.cols is None else self.cols.count

    def ids(self) -> list[str] | dict[str, Ep]:
        """The container ids, in connection order (without indexing them)."""
        return self._eps if self.cols is None else self.cols.ids()

    @property
    def size(self) -> int:
        return self.vec.size

    def reserved(self, off: int) -> str | None:
        """Why slot ``off`` may never hold an endpoint, or None."""
        if off == 0:
            return "the network address"
        if off == self.vec.size - 1:
            return "the broadcast address"
        if off == self.gw_off:
            return "the gateway"
        return None

    @staticmethod
    def new_vector(size: int, gw_off: int) -> BitVector:
        vec = BitVector(size)
        for off in (0, size - 1, gw_off):
            vec.set(off)
        vec.cursor = 1
        return vec


class TenantRanges:
    """Per tenant, the disjoint address ranges of its networks, sorted (for overlap checks)."""

    __slots__ = ("_by_tenant",)

    def __init__(self) -> None:
        self._by_tenant: dict[str, list[tuple[int, int, str]]] = {}

    def overlapping(self, tenant: str, start: int, end: int) -> str | None:
        """The name of a network of ``tenant`` overlapping ``[start, end)``, or None."""
        ranges = self._by_tenant.get(tenant)
        if not ranges:
            return None
        pos = bisect.bisect_left(ranges, (start,))
        if pos < len(ranges) and ranges[pos][0] < end:
            return ranges[pos][2]
        if pos > 0 and ranges[pos - 1][1] > start:
            return ranges[pos - 1][2]
        return None

    def add(self, tenant: str, start: int, end: int, name: str) -> None:
        bisect.insort(self._by_tenant.setdefault(tenant, []), (start, end, name))

    def remove(self, tenant: str, start: int, end: int, name: str) -> None:
        ranges = self._by_tenant[tenant]
        ranges.remove((start, end, name))
        if not ranges:
            del self._by_tenant[tenant]


#: One entry of the change log: (index, kind, network, endpoint_id, host, old_host, policy_id[, service]).
ChangeRow = (
    tuple[int, ChangeKind, str | None, str | None, str | None, str | None, str | None]
    | tuple[int, ChangeKind, str | None, str | None, str | None, str | None, str | None, str | None]
)


class Tables:
    """The tables of NetworkState (its ``_clear`` fills them), declared here for the command mixins
    that NetworkState is built from, and ``_note``, which adds to the change log."""

    last_index: int
    _nets: dict[str, Net]
    _ranges: TenantRanges
    _vnis: BitVector
    #: the indexes behind ``_containers``, ``_named`` and ``_hosts``: None until first needed after a restore
    _by_container: dict[str, tuple[str, ...]] | None
    _by_name: dict[str, dict[str, int]] | None
    _by_host: dict[str, dict[str, int]] | None
    _policies: dict[str, Policy]
    _stale: set[str]
    _qos_pool: dict[tuple[int, int, int], tuple[int, int, int]]
    _services: dict[str, dict[str, dict[str, Svc]]]
    _changes: collections.deque[ChangeRow]

    @property
    def _containers(self) -> dict[str, tuple[str, ...]]:
        """Container id -> the networks it is in, sorted."""
        by = self._by_container
        return self._index_containers()[0] if by is None else by

    @property
    def _named(self) -> dict[str, dict[str, int]]:
        """Container name -> container id -> in how many networks its endpoint carries that name."""
        by = self._by_name
        return self._index_containers()[1] if by is None else by

    @property
    def _hosts(self) -> dict[str, dict[str, int]]:
        """Host -> network -> how many endpoints of that network the host has.

        Connects and disconnects keep it up to date only once it is built (``_by_host``); until
        then it is derived from the networks when a query or a host command first needs it
        (endpoint commands do not: a Connect checks a new host's name with the id pattern).
        """
        by = self._by_host
        return self._index_hosts() if by is None else by

    def _index_hosts(self) -> dict[str, dict[str, int]]:
        """Build the host index from the networks' host columns (counted in C) or dicts."""
        hosts: dict[str, dict[str, int]] = {}
        for name, net in list(self._nets.items()):
            cols = net.cols
            on_hosts = cols.host_counts() if cols is not None else collections.Counter(map(_HOST_OF, net.eps.values()))
            for host, count in on_hosts.items():
                hosts.setdefault(host, {})[name] = count
        self._by_host = hosts
        return hosts

    def _index_containers(self) -> tuple[dict[str, tuple[str, ...]], dict[str, dict[str, int]]]:
        with gc_paused():
            return run_steps(self._index_containers_steps())

    def _index_containers_steps(
        self,
    ) -> Generator[None, None, tuple[dict[str, tuple[str, ...]], dict[str, dict[str, int]]]]:
        """Build the container and name indexes (a restore leaves them to the first command or
        query that needs one) by bulk operations, in steps: one dict over every network's ids;
        a container in several networks (rare) sends it down a merge per network instead."""
        nets = list(self._nets.values())
        ids_of = []
        for net in nets:
            ids_of.append(net.ids())
            if net.count >= _CHUNK:
                yield  # splitting a big network's ids is a step of its own
        keys = itertools.chain.from_iterable(ids_of)
        values = itertools.chain.from_iterable(
            itertools.repeat((net.net.name,), len(ids)) for net, ids in zip(nets, ids_of, strict=True)
        )
        containers: dict[str, tuple[str, ...]] = {}
        yield from fill_in_steps(containers, zip(keys, values, strict=True))
        if len(containers) != sum(map(len, ids_of)):
            containers = {}
            for net, ids in zip(nets, ids_of, strict=True):
                name = net.net.name
                elsewhere = {cid: containers[cid] for cid in containers.keys() & ids}
                containers.update(dict.fromkeys(ids, (name,)))
                for cid, nets_of in elsewhere.items():
                    containers[cid] = tuple(sorted((*nets_of, name)))
        named: dict[str, dict[str, int]] = {}
        for net in nets:
            cols = net.cols
            if cols is not None:
                pairs = cols.named()
            else:
                eps = net.eps
                pairs = list(zip(itertools.compress(eps, map(_NAME_OF, eps.values())),
                                 filter(None, map(_NAME_OF, eps.values())), strict=True))
            for cid, cname in pairs:
                of_name = named.setdefault(cname, {})
                of_name[cid] = of_name.get(cid, 0) + 1
        if self._by_container is None or self._by_name is None:  # (else built meanwhile by a query)
            self._by_container, self._by_name = containers, named
        return self._by_container, self._by_name

    def _note(
        self,
        index: int,
        kind: ChangeKind,
        network: str | None = None,
        endpoint_id: str | None = None,
        host: str | None = None,
        old_host: str | None = None,
        policy_id: str | None = None,
        service: str | None = None,
    ) -> None:
        if service is None:
            self._changes.append((index, kind, network, endpoint_id, host, old_host, policy_id))
        else:
            self._changes.append((index, kind, network, endpoint_id, host, old_host, policy_id, service))

    if TYPE_CHECKING:  # pragma: no cover
        # defined by NetworkState and EndpointCommands
        def _net(self, name: str) -> Net: ...

        def _drop_ep(self, net: Net, cid: str) -> Ep: ...

        def _drop_services(self, net: Net, cid: str) -> None: ...
