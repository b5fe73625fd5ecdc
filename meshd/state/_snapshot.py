"""Snapshot format of the network state: versioned msgpack, columnar.

Format 6 (written now) is format 5 with the ``cids`` column of each network
row as one string: the container ids in connection order, joined by single
spaces (ids are printable ASCII without spaces: ``_validate._ID_RE``), ``""``
for none.  A restore then decodes one string per network instead of a
million, and keeps each network's columns as they are until something needs
its endpoints (``Net.cols``): a restore costs the decode, the checks and the
per-host counts; the first command that touches a network builds its
endpoint dict, and the first that needs the container index builds that.  A
network whose columns were never opened is written back as it was read.

Format 5 is format 4 with one more top-level key, is format 4 with one more top-level key,
``"services"``: ``[[network, name, container id, port, weight, ttl_s, check,
interval_s, healthy], ...]`` in table order (network, service, publish order).

Format 4 is format 3 with one more column at the end of each
network row: ``options``, the network's mode options (a str → str map).

Format 3 is format 2 with one more column at the end of each
network row: ``names``, ``{position: container name}`` of the endpoints whose
connect gave a name (sparse, like ``macs``).

Format 2 is one msgpack map::

    {"format": 2, "last_index": int, "vni_cursor": int,
     "stale_hosts": [str, ...] (sorted),
     "policies": [[policy_id, kind, network, peer, created_index], ...],
     "networks": [[name, tenant, subnet, gateway, vni, mode, mtu, egress_kbit,
                   external, labels, created_index,
                   ip_cursor, ip_bits,            # the IP bit vector, raw
                   cids,                          # container ids, connection order
                   host_table, host_code, host_idx,  # hosts interned: array bytes
                   ip_code, ip_offs,              # IP offsets in the subnet: array bytes
                   macs,                          # {position: explicit MAC int}
                   qos_table, qos_code, qos_idx,
                   names], ...]}                  # format 3 only

Columns are little-endian ``array`` bytes with the smallest type code that
fits ('B', 'H' or 'I'), so a million endpoints cost about 16 bytes each
(mostly the container id).  The VNI bit vector is not stored: it is rebuilt
from the networks' VNIs (only its cursor is kept).

Format 1 (the first, row-per-endpoint layout) still loads::

    {"format": 1, "last_index": int, "stale_hosts": [...], "policies": [...as above],
     "networks": [{"name", "tenant", "subnet", "gateway", "vni", "mode", "mtu",
                   "egress_kbit", "external", "labels", "created_index"}, ...],
     "endpoints": [[cid, network, host, ip, mac or None, [rate_kbit, burst_bytes, latency_ms]], ...]}

A loader never trusts a snapshot: shapes, ranges and the bit vectors'
popcounts are checked, and anything wrong raises ValueError.
"""

from __future__ import annotations

import collections
import ipaddress
import itertools
import sys
from array import array
from collections.abc import Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import msgpack

from ._bitvec import BitVector
from ._commands import Reject
from ._tables import Ep, Net, QosKey, fill_in_steps, gc_paused, qos_key
from ._types import Mode, Network, Policy, PolicyKind, Qos, format_ipv4

if TYPE_CHECKING:
    from ._machine import NetworkState

FORMAT = 6
#: formats whose network rows are columnar (2 onwards); 6 keeps the container ids as one string
_COLUMNAR = (2, 3, 4, 5, 6)
_BIG_ENDIAN = sys.byteorder == "big"


def _code(limit: int) -> str:
    """Smallest unsigned array type code holding values below ``limit``."""
    return "B" if limit <= 1 << 8 else "H" if limit <= 1 << 16 else "I"


def _pack(code: str, values: Any) -> bytes:
    arr = array(code, values)
    if _BIG_ENDIAN:
        arr.byteswap()
    return arr.tobytes()


def _unpack(code: str, data: bytes) -> array[int]:
    if code not in ("B", "H", "I"):
        raise ValueError(f"snapshot column type {code!r} is not one of B, H, I")
    arr = array(code)
    arr.frombytes(data)
    if _BIG_ENDIAN:
        arr.byteswap()
    return arr


# --- writing -----------------------------------------------------------------


def dump(st: NetworkState) -> bytes:
    """The state as snapshot bytes (format 6).  Runs in a worker thread of the Raft driver."""
    with gc_paused():
        return _dump(st)


def _dump(st: NetworkState) -> bytes:
    doc = {
        "format": FORMAT,
        "last_index": st.last_index,
        "vni_cursor": st._vnis.cursor,
        "stale_hosts": sorted(st._stale),
        "policies": [[p.policy_id, p.kind.value, p.network, p.peer, p.created_index] for p in st._policies.values()],
        "networks": [_dump_net(net) for net in st._nets.values()],
        "services": [
            [network, name, cid, *svc]
            for network, by_name in st._services.items()
            for name, entries in by_name.items()
            for cid, svc in entries.items()
        ],
    }
    blob: bytes = msgpack.packb(doc, use_bin_type=True)
    return blob


def _dump_net(net: Net) -> list[Any]:
    n = net.net
    head = [
        n.name, n.tenant, n.subnet, n.gateway, n.vni, n.mode.value, n.mtu, n.egress_kbit,
        n.external, n.labels, n.created_index, net.vec.cursor, net.vec.to_bytes(),
    ]  # fmt: skip
    cols = net.cols
    if isinstance(cols, _Columns) and cols.row is not None:  # never opened since a format-6 restore
        return head + cols.row + [n.options]
    eps = net.eps
    head.append(" ".join(eps))
    if eps:
        hosts, ips, macs, qoss, names = zip(*eps.values(), strict=True)
    else:
        hosts = ips = macs = qoss = names = ()
    host_table = list(dict.fromkeys(hosts))
    host_pos = {h: i for i, h in enumerate(host_table)}
    # sorted, so that the table does not depend on which endpoint came first
    qos_table = sorted(set(qoss), key=_qos_sort_key)
    qos_pos = {q: i for i, q in enumerate(qos_table)}
    explicit = {} if macs.count(None) == len(macs) else {i: m for i, m in enumerate(macs) if m is not None}
    named = {} if names.count(None) == len(names) else {i: m for i, m in enumerate(names) if m is not None}
    hcode, qcode, icode = _code(len(host_table)), _code(len(qos_table)), _code(net.size)
    return head + [
        host_table, hcode, _pack(hcode, map(host_pos.__getitem__, hosts)),
        icode, _pack(icode, ips),
        explicit,
        [list(_qos_sort_key(q)) for q in qos_table], qcode, _pack(qcode, map(qos_pos.__getitem__, qoss)),
        named, n.options,
    ]  # fmt: skip


def _qos_sort_key(q: QosKey) -> tuple[int, int, int]:
    return (0, 0, 0) if q is None else q


# --- reading -----------------------------------------------------------------


def load(st: NetworkState, data: bytes) -> None:
    """Fill the empty state ``st`` from a snapshot of any supported format (collector paused)."""
    with gc_paused():
        _load(st, data)


def _load(st: NetworkState, data: bytes) -> None:
    try:
        doc = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises many types on bad input
        raise ValueError(f"snapshot is not valid msgpack: {exc.__class__.__name__}: {exc}") from None
    if not isinstance(doc, dict) or "format" not in doc:
        raise ValueError("snapshot is not a meshd network-state snapshot (no format field)")
    version = doc["format"]
    loader = _load_v1 if version == 1 else _load_v2 if version in _COLUMNAR else None
    if loader is None:
        raise ValueError(
            f"snapshot format {version!r} is not supported (this meshd reads 1 to {FORMAT}): upgrade meshd"
        )
    try:
        loader(st, doc)
        _load_common(st, doc)
    except (KeyError, IndexError, TypeError, ValueError, Reject) as exc:
        raise ValueError(f"snapshot format {version} is corrupt: {exc.__class__.__name__}: {exc}") from None


def _load_common(st: NetworkState, doc: dict[str, Any]) -> None:
    st.last_index = _int(doc["last_index"])
    for pid, kind, network, peer, created in doc["policies"]:
        if network not in st._nets or (peer is not None and peer not in st._nets):
            raise ValueError(f"policy {pid!r} names a network that is not in the snapshot")
        st._policies[pid] = Policy(pid, PolicyKind(kind), network, peer, created)
    st._stale.update(doc["stale_hosts"])
    for network, name, cid, port, weight, ttl, check, interval, healthy in doc.get("services", ()):
        if cid not in st._nets[network].eps:
            raise ValueError(f"service {name!r} names endpoint {cid!r}, which is not in network {network!r}")
        entry = (_int(port), _int(weight), _int(ttl), str(check), _int(interval), bool(healthy))
        st._services.setdefault(network, {}).setdefault(name, {})[cid] = entry
    for net in st._nets.values():
        if not st._vnis.set(net.net.vni):
            raise ValueError(f"VNI {net.net.vni} is used twice")
        st._ranges.add(net.net.tenant, net.base, net.base + net.size, net.net.name)
        if net.vec.count != net.count + 3:
            raise ValueError(
                f"network {net.net.name!r}: {net.vec.count} bits set for {net.count} endpoints + 3 reserved"
            )
    st._by_container = st._by_name = st._by_host = None  # built when first needed (Tables._index_*)


def _int(value: object) -> int:
    if type(value) is not int:
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _ipv4(text: str) -> int:
    """Dotted quad to int (snapshots hold canonical addresses; ipaddress is 10x slower)."""
    a, b, c, d = map(int, text.split("."))
    if not (0 <= a < 256 and 0 <= b < 256 and 0 <= c < 256 and 0 <= d < 256):
        raise ValueError(f"{text!r} is not an IPv4 address")
    return a << 24 | b << 16 | c << 8 | d


def _make_net(name: str, tenant: str, subnet: str, gateway: str, vni: object, mode: str, mtu: object, egress: object,
              external: object, labels: Mapping[str, str], created: object,
              options: Mapping[str, str] | None = None) -> Net:
    addr, _, plen = subnet.partition("/")
    base, prefix = _ipv4(addr), int(plen)
    size = 1 << (32 - prefix) if 8 <= prefix <= 30 else 0
    gw_off = _ipv4(gateway) - base
    if not size or base % size or not 0 < gw_off < size - 1:
        raise ValueError(f"network {name!r}: subnet {subnet} or its gateway {gateway} is invalid")
    network = Network(
        name, tenant, f"{format_ipv4(base)}/{prefix}", format_ipv4(base + gw_off), _int(vni), Mode(mode), _int(mtu),
        _int(egress), bool(external), dict(labels), _int(created), dict(options or {}),
    )  # fmt: skip
    return Net(network, base, prefix, gw_off, Net.new_vector(size, gw_off))


def _load_v2(st: NetworkState, doc: dict[str, Any]) -> None:
    st._vnis.cursor = _int(doc["vni_cursor"])
    version = doc["format"]
    for row in doc["networks"]:
        net = _make_net(*row[:11], *([row[24]] if version >= 4 else []))
        name = net.net.name
        if name in st._nets:
            raise ValueError(f"network {name!r} appears twice")
        net.vec = BitVector.from_bytes(net.size, row[12], row[11])
        cols = _Columns(st, name, net.size, row[13:23], row[23] if version >= 3 else {}, version)
        net.cols = cols
        st._nets[name] = net


class _Columns:
    """One network's endpoint columns as a columnar snapshot holds them (``Net.cols``).

    The constructor checks everything that needs no per-endpoint Python work
    (lengths, index ranges, the host table); :meth:`build` makes the endpoint
    dict when the network is first used, and finds an id listed twice then.
    """

    __slots__ = ("count", "row", "_ids", "_text", "_hosts", "_hidx", "_offs", "_macs", "_qtab", "_qidx", "_names",
                 "_name")

    def __init__(self, st: NetworkState, name: str, size: int, row: list[Any], named: Mapping[int, str],
                 version: int) -> None:
        cids, host_table, hcode, hidx, icode, ips, macs, qos_table, qcode, qidx = row
        self._name = name
        #: the columns as read, to write back unchanged (format 6 only: older rows are rebuilt from the dict)
        self.row: list[Any] | None = [*row, named] if version == 6 else None
        if version == 6:
            if type(cids) is not str:
                raise ValueError(f"network {name!r}: container ids are not one string")
            self._text: str | None = cids
            self._ids: list[str] | None = None
            self.count = cids.count(" ") + 1 if cids else 0
        else:
            self._text, self._ids = None, list(cids)
            self.count = len(self._ids)
        self._hosts: list[str] = list(host_table)
        self._hidx, self._offs, self._qidx = _unpack(hcode, hidx), _unpack(icode, ips), _unpack(qcode, qidx)
        self._qtab = [_qos_in(st, t) for t in qos_table]
        self._macs: dict[int, int] = dict(macs)
        self._names: dict[int, str] = dict(named)
        n = self.count
        if not n == len(self._hidx) == len(self._offs) == len(self._qidx):
            raise ValueError(f"network {name!r}: endpoint columns differ in length")
        if not set(map(type, self._hosts)) <= {str}:
            raise ValueError(f"network {name!r}: the host table holds a non-string")
        if n and (max(self._hidx) >= len(self._hosts) or max(self._qidx) >= len(self._qtab)
                  or max(self._offs) >= size):
            raise ValueError(f"network {name!r}: a host, QoS or address index is out of range")
        if any(type(p) is not int or not 0 <= p < n for p in itertools.chain(self._macs, self._names)):
            raise ValueError(f"network {name!r}: a MAC or name is given for an endpoint that is not there")

    def host_counts(self) -> dict[str, int]:
        """Host -> how many of the network's endpoints it has (counted in C on the index column)."""
        counts: dict[str, int] = {}
        for i, count in collections.Counter(self._hidx).items():
            host = self._hosts[i]
            counts[host] = counts.get(host, 0) + count
        return counts

    def ids(self) -> list[str]:
        if self._ids is None:
            assert self._text is not None
            self._ids = self._text.split(" ") if self._text else []
        return self._ids

    def named(self) -> list[tuple[str, str]]:
        ids = self.ids()
        return [(ids[pos], name) for pos, name in self._names.items()]

    def build_steps(self) -> Generator[None, None, tuple[dict[str, Ep], dict[int, str]]]:
        ids, n = self.ids(), self.count
        hosts = list(map(self._hosts.__getitem__, self._hidx))
        qos = list(map(self._qtab.__getitem__, self._qidx))
        col: list[int | None] = [None] * n
        macs: dict[int, str] = {}
        for pos, mac in self._macs.items():
            col[pos] = mac
            macs[mac] = ids[pos]
        names: list[str | None] = [None] * n
        for pos, cname in self._names.items():
            names[pos] = cname
        eps: dict[str, Ep] = {}
        yield from fill_in_steps(eps, zip(ids, zip(hosts, self._offs, col, qos, names, strict=True), strict=True))
        if len(eps) != n:
            raise ValueError(
                f"snapshot of network {self._name!r} lists an endpoint twice (the snapshot was corrupt): "
                "restore this node from a healthy replica"
            )
        return eps, macs


def _fill(st: NetworkState, net: Net, cids: list[str], hosts: list[str], offs: Iterable[int],
          macs: list[int | None], qos: list[QosKey], names: list[str | None]) -> None:
    """Install a network's endpoint rows (format 1); the cross-network indexes are built on first use."""
    name = net.net.name
    net._eps = dict(zip(cids, zip(hosts, offs, macs, qos, names, strict=True), strict=True))
    if len(net._eps) != len(cids):
        raise ValueError(f"network {name!r} lists an endpoint twice")
    st._nets[name] = net


def _qos_in(st: NetworkState, row: Iterable[object]) -> QosKey:
    """A QoS row of a snapshot in its internal, interned form."""
    key = qos_key(Qos(*map(_int, row)))
    return None if key is None else st._qos_pool.setdefault(key, key)


def _load_v1(st: NetworkState, doc: dict[str, Any]) -> None:
    rows: dict[str, list[list[Any]]] = {}
    for n in doc["networks"]:
        net = _make_net(
            n["name"], n["tenant"], n["subnet"], n["gateway"], n["vni"], n["mode"], n["mtu"], n["egress_kbit"],
            n["external"], n["labels"], n.get("created_index", 0),
        )  # fmt: skip
        st._nets[net.net.name] = net
        rows[net.net.name] = []
    for cid, network, host, ip, mac, qos in doc["endpoints"]:
        rows[network].append([cid, host, ip, mac, qos])
    nets, st._nets = st._nets, {}
    for name, net in nets.items():
        offs: list[int] = []
        macs: list[int | None] = []
        for cid, _host, ip, mac, _qos in rows[name]:
            off = int(ipaddress.IPv4Address(ip)) - net.base
            if net.reserved(off) or not net.vec.set(off):
                raise ValueError(f"endpoint {cid!r}: IP {ip} is reserved or used twice in {name!r}")
            offs.append(off)
            macs.append(None if mac is None else int(mac.replace(":", ""), 16))
        cids = [r[0] for r in rows[name]]
        net._macs = {m: c for m, c in zip(macs, cids, strict=True) if m is not None}
        qos = [_qos_in(st, r[4]) for r in rows[name]]
        _fill(st, net, cids, [r[1] for r in rows[name]], offs, macs, qos, [None] * len(cids))
