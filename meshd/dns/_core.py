"""The resolver core: a tenant's view and a query packet in, the answer packet out.  No I/O.

Theory of operation
-------------------
A :class:`View` is everything one querying network may see: the names of
the containers and services of *its tenant* (never another's), built from
the replicated state by :func:`build_view` with the hosts that are live
right now (an entry of a failed host is left out at once, before the Raft
leader removes it).  :func:`answer` takes the view and one UDP payload and
returns an :class:`Outcome`:

* ``reply``: the response bytes to send back;
* ``forward``: the name is outside the zone and forwarding is on: the driver
  sends the query bytes to the host's resolvers and relays their answer;
* neither: drop the packet (not a query at all, or too short to answer).

Names (``D`` is ``dns.domain``, ``N`` a network of the tenant):

* ``C.D`` and ``C.N.D``: A of container ``C`` (its address in the querying
  network first, then in the tenant's other networks; ``C.N.D`` only in N);
* ``S.D`` and ``S.N.D``: A of the healthy entries of service ``S``, rotated
  by ``turn`` so clients spread;
* ``_S._tcp.D`` (or ``_S._udp``, and ``.N.D``): SRV, one per healthy entry
  (priority 0, the entry's weight and port, target ``C.N.D``), their A in
  the additional section;
* ``x.x.x.x.in-addr.arpa`` of an address of the tenant: PTR ``C.N.D``.

A name inside ``D`` that the view lacks is NXDOMAIN, so another tenant's
name (or address) is answered exactly like a name nobody has: nothing leaks.
A reverse name of an address outside all of meshd's networks and any other
name outside ``D`` are forwarded (or REFUSED when forwarding is off).  A
packet that does not parse as a query gets FORMERR when its header can be
read, else it is dropped; the core never raises on input.

The wire codec is dnslib's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from dnslib import OPCODE, PTR, QTYPE, RCODE, RR, SRV, A, DNSError, DNSHeader, DNSRecord
from dnslib.buffer import Buffer

from meshd import state as st

#: a UDP DNS answer larger than this is truncated (TC) by dropping records (RFC 1035)
MAX_UDP_BYTES = 512
_CLASS_IN, _CLASS_ANY = 1, 255


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """One healthy service entry as DNS shows it."""

    ip: str
    port: int
    weight: int
    #: ``container.network.domain`` (or ``endpoint-id-prefix.network.domain`` when unnamed)
    host: str
    ttl_s: int


@dataclasses.dataclass(frozen=True, slots=True)
class View:
    """What one querying network may resolve (all names lower case, without the final dot)."""

    domain: str
    #: name -> addresses, the querying network's first
    names: Mapping[str, tuple[str, ...]]
    #: service name (``S.D``, ``S.N.D``) -> healthy entries
    services: Mapping[str, tuple[Target, ...]]
    #: address of the tenant -> ``C.N.D``
    ptrs: Mapping[str, str]
    #: addresses of any tenant's network are never forwarded (ranges as (first, last) ints)
    meshd_ranges: tuple[tuple[int, int], ...]
    ttl_s: int
    forward: bool


EMPTY_VIEW = View("meshd", {}, {}, {}, (), 5, False)


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    reply: bytes | None = None
    forward: bool = False
    #: for counters: answered, nxdomain, refused, formerr, forwarded, dropped, notimp
    kind: str = "dropped"


def build_view(state: st.NetworkState, network: str, live_hosts: frozenset[str] | set[str], *,
               domain: str, ttl_s: int, forward: bool) -> View:
    """The view of a container in ``network``: its tenant's names, entries of ``live_hosts`` only.

    Args:
      state: the local replica.
      network: the querying network (its tenant bounds the view).
      live_hosts: hosts whose entries count (a failed host's are left out at once).
    """
    info = state.network(network)
    if info is None:
        return dataclasses.replace(EMPTY_VIEW, domain=domain, ttl_s=ttl_s, forward=forward)
    tenant = info.network.tenant
    nets = [i.network for i in state.networks()]
    own = sorted((n.name for n in nets if n.tenant == tenant), key=lambda n: (n != network, n))
    names: dict[str, list[str]] = {}
    ptrs: dict[str, str] = {}
    hostnames: dict[tuple[str, str], str] = {}
    for net in own:
        for ep in state.endpoints(network=net):
            label = _label(ep.name) if ep.name else ep.endpoint_id[:12]
            fqdn = f"{label}.{net}.{domain}".lower()
            hostnames[(ep.endpoint_id, net)] = fqdn
            ptrs[ep.ip] = fqdn
            if ep.host not in live_hosts:
                continue
            names.setdefault(fqdn, []).append(ep.ip)
            names.setdefault(f"{label}.{domain}".lower(), []).append(ep.ip)
    services: dict[str, list[Target]] = {}
    for e in state.services(tenant=tenant):
        if not e.healthy or e.host not in live_hosts or e.weight == 0:
            continue
        t = Target(e.ip, e.port, e.weight, hostnames[(e.endpoint_id, e.network)], min(e.ttl_s, ttl_s))
        for key in (f"{e.name}.{domain}", f"{e.name}.{e.network}.{domain}".lower()):
            services.setdefault(key, []).append(t)
    ranges = tuple(sorted(_range(n.subnet) for n in nets))
    return View(domain.lower(), {k: tuple(v) for k, v in names.items()}, {k: tuple(v) for k, v in services.items()},
                ptrs, ranges, ttl_s, forward)


def _label(name: str) -> str:
    """A container name as one DNS label ('_' and '.' are not host-name characters: '-')."""
    return name.replace("_", "-").replace(".", "-")[:63]


def _range(subnet: str) -> tuple[int, int]:
    addr, _, plen = subnet.partition("/")
    base = _ip_int(addr)
    return base, base + (1 << (32 - int(plen))) - 1


def _ip_int(text: str) -> int:
    a, b, c, d = (int(x) for x in text.split("."))
    return a << 24 | b << 16 | c << 8 | d


def answer(view: View, packet: bytes, *, turn: int = 0) -> Outcome:
    """The outcome of one query packet (see the module docstring).  Never raises."""
    if len(packet) < 12:
        return Outcome(kind="dropped")
    try:
        query = DNSRecord.parse(packet)
    except (DNSError, ValueError, IndexError, UnicodeError, AttributeError, TypeError):
        return _header_error(packet, RCODE.FORMERR, "formerr")
    h = query.header
    if h.qr:
        return Outcome(kind="dropped")  # a response sent to us: never answer one (no loops)
    if h.opcode != OPCODE.QUERY:
        return _reply(query, RCODE.NOTIMP, "notimp")
    if len(query.questions) != 1:
        return _reply(query, RCODE.FORMERR, "formerr")
    q = query.q
    name = str(q.qname).rstrip(".").lower()
    if q.qclass not in (_CLASS_IN, _CLASS_ANY):
        return _reply(query, RCODE.REFUSED, "refused")
    if name.endswith(".in-addr.arpa"):
        return _reverse(view, query, name)
    if name == view.domain or name.endswith("." + view.domain):
        return _forward_zone(view, query, name, q.qtype, turn)
    if "." not in name:  # a bare name the search domain did not catch: never forwarded
        return _reply(query, RCODE.NXDOMAIN, "nxdomain")
    if view.forward:
        return Outcome(forward=True, kind="forwarded")
    return _reply(query, RCODE.REFUSED, "refused")


def _forward_zone(view: View, query: DNSRecord, name: str, qtype: int, turn: int) -> Outcome:
    reply = query.reply()
    labels = name.split(".")
    if labels[0].startswith("_") and len(labels) > 2 and labels[1] in ("_tcp", "_udp"):
        targets = view.services.get(".".join([labels[0][1:], *labels[2:]]))
        if targets is None:
            return _reply(query, RCODE.NXDOMAIN, "nxdomain")
        if qtype in (QTYPE.SRV, QTYPE.ANY):
            for t in _rotate(targets, turn):
                reply.add_answer(RR(query.q.qname, QTYPE.SRV, rdata=SRV(0, t.weight, t.port, t.host), ttl=t.ttl_s))
                reply.add_ar(RR(t.host, QTYPE.A, rdata=A(t.ip), ttl=t.ttl_s))
        return _packed(reply, "answered")
    targets = view.services.get(name)
    if targets is not None:
        if qtype in (QTYPE.A, QTYPE.ANY):
            for t in _rotate(targets, turn):
                reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A(t.ip), ttl=t.ttl_s))
        return _packed(reply, "answered")
    ips = view.names.get(name)
    if ips is None:
        return _reply(query, RCODE.NXDOMAIN, "nxdomain")
    if qtype in (QTYPE.A, QTYPE.ANY):
        for ip in ips:
            reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A(ip), ttl=view.ttl_s))
    return _packed(reply, "answered")  # NOERROR without records: the name exists (e.g. AAAA)


def _reverse(view: View, query: DNSRecord, name: str) -> Outcome:
    parts = name[: -len(".in-addr.arpa")].split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        return _reply(query, RCODE.NXDOMAIN, "nxdomain") if not view.forward else Outcome(forward=True,
                                                                                          kind="forwarded")
    ip = ".".join(reversed(parts))
    target = view.ptrs.get(ip)
    if target is not None:
        reply = query.reply()
        if query.q.qtype in (QTYPE.PTR, QTYPE.ANY):
            reply.add_answer(RR(query.q.qname, QTYPE.PTR, rdata=PTR(target), ttl=view.ttl_s))
        return _packed(reply, "answered")
    value = _ip_int(ip)
    if any(lo <= value <= hi for lo, hi in view.meshd_ranges) or not view.forward:
        return _reply(query, RCODE.NXDOMAIN, "nxdomain")  # another tenant's address: as if nobody had it
    return Outcome(forward=True, kind="forwarded")


def _rotate(targets: tuple[Target, ...], turn: int) -> tuple[Target, ...]:
    k = turn % len(targets)
    return targets[k:] + targets[:k]


def _reply(query: DNSRecord, rcode: int, kind: str) -> Outcome:
    reply = query.reply()
    reply.header.rcode = rcode
    return _packed(reply, kind)


def _packed(reply: DNSRecord, kind: str) -> Outcome:
    reply.header.ra = 1 if kind != "refused" else 0
    data = reply.pack()
    if len(data) > MAX_UDP_BYTES:
        reply.ar = []
        while len(reply.rr) > 1 and len(reply.pack()) > MAX_UDP_BYTES:
            reply.rr.pop()
        reply.header.tc = 1
        data = reply.pack()
    return Outcome(reply=data, kind=kind)


def _header_error(packet: bytes, rcode: int, kind: str) -> Outcome:
    """A reply with only the header of an unparsable query (id, opcode, RD kept), or drop."""
    try:
        h = DNSHeader.parse(Buffer(packet))
    except Exception:
        return Outcome(kind="dropped")
    if h.qr:
        return Outcome(kind="dropped")
    out = DNSRecord(DNSHeader(id=h.id, qr=1, opcode=h.opcode, rd=h.rd, ra=1, rcode=rcode))
    return Outcome(reply=out.pack(), kind=kind)


def forward_reply_ok(query: bytes, reply: bytes) -> bool:
    """A forwarded answer is relayed only if it answers that query (same id, a response)."""
    return len(reply) >= 12 and reply[:2] == query[:2] and bool(reply[2] & 0x80)


def servfail(query: bytes) -> bytes | None:
    """SERVFAIL for a query whose forward failed (timeout, too many in flight)."""
    out = _header_error(query, RCODE.SERVFAIL, "servfail")
    if out.reply is None:
        return None
    try:
        q = DNSRecord.parse(query)
        r = q.reply()
        r.header.rcode = RCODE.SERVFAIL
        return r.pack()
    except Exception:
        return out.reply
