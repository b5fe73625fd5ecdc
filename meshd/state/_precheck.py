"""What the local replica can refuse before a command costs a log entry.

A command the state would reject still takes a Raft entry on every host when
it is proposed: one misbehaving scheduler would grow every log at the rate it
sends. :func:`precheck` runs, against the local replica and without changing
it, the checks the command's handler runs first, with the handler's own
helpers, so a refusal here is the refusal the state would give (the same code
and message; a property test holds them equal):

* networks: a name that is invalid or taken, a bad tenant, subnet, gateway,
  mode, MTU, rate or labels, an overlap, a VNI out of range or taken;
  deleting or updating a network that does not exist, or deleting one that
  still has endpoints;
* endpoints: an unknown network, an invalid id or host, a container placed on
  another host or a stale one, a repeat that differs from the first connect,
  bad QoS or MAC, a requested IP that is outside, reserved or taken, a full
  pool; disconnecting or changing the QoS of an endpoint that is not there;
  moving one that is in no network;
* policies: an unknown kind or network, a duplicate policy or id; removing a
  policy that does not exist.

A replica may lag behind the leader (a network created a moment ago through
another host), so a caller that gets a refusal must make sure its replica is
current (a Raft read barrier) and check again before it answers: then the
refusal is what the command would have met at that point of the log. The
state checks everything again when it applies a command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _validate as v
from ._commands import (
    AddPolicy,
    CommandError,
    Connect,
    CreateNetwork,
    DeleteNetwork,
    Disconnect,
    ErrorCode,
    MoveEndpoint,
    Reject,
    RemovePolicy,
    SetQos,
    UpdateNetwork,
)
from ._epcmds import no_lease
from ._types import NO_QOS, Mode

if TYPE_CHECKING:
    from ._machine import NetworkState


def precheck(state: NetworkState, command: object) -> CommandError | None:
    """The error ``state`` would answer ``command`` with, if it can tell without applying it; else None."""
    check = _CHECKS.get(type(command))
    if check is None:
        return None
    try:
        check(state, command)
    except Reject as exc:
        return exc.error()
    return None


def _create_network(s: NetworkState, c: CreateNetwork) -> None:
    s._check_create_network(c)


def _delete_network(s: NetworkState, c: DeleteNetwork) -> None:
    s._check_delete_network(c)


def _update_network(s: NetworkState, c: UpdateNetwork) -> None:
    s._net(c.name)


def _connect(s: NetworkState, c: Connect) -> None:
    net = s._net(c.network)
    cid, host = v.check_id("endpoint id", c.endpoint_id), c.host
    if not (type(host) is str and v._ID_RE.match(host)) and host not in s._hosts:
        v.check_id(f"host of endpoint {cid!r}", host)
    nets_of = s._containers.get(cid)
    if nets_of is not None and c.network in nets_of:
        s._reconnect(net, cid, net.eps[cid], c)
        return
    if nets_of is not None or host in s._stale:
        s._check_placement(cid, host, nets_of)
    qos = c.qos
    if qos is not NO_QOS and (qos.rate_kbit or qos.burst_bytes or qos.latency_ms):
        v.check_qos(f"endpoint {cid!r}", qos)
    if net.net.mode is Mode.DHCP and (c.ip is None or c.mac is None):
        no_lease(c.network, cid)
    if c.mac is not None:
        s._check_mac(net, cid, c.mac)
    if c.name is not None:
        v.check_container_name(f"name of endpoint {cid!r}", c.name)
    if c.ip is not None:
        s._requested_offset(net, cid, c.ip)
    elif not net.vec.free:
        raise Reject(
            ErrorCode.POOL_EXHAUSTED,
            f"network {c.network!r} ({net.net.subnet}) has no free address left for {cid!r}: "
            "disconnect unused endpoints, give an explicit ip, or create a larger network",
        )


def _disconnect(s: NetworkState, c: Disconnect) -> None:
    s._ep(s._net(c.network), c.endpoint_id)


def _set_qos(s: NetworkState, c: SetQos) -> None:
    s._ep(s._net(c.network), c.endpoint_id)
    v.check_qos(f"endpoint {c.endpoint_id!r}", c.qos)


def _move_endpoint(s: NetworkState, c: MoveEndpoint) -> None:
    s._check_move(c)


def _add_policy(s: NetworkState, c: AddPolicy) -> None:
    s._check_add_policy(c)
    if c.policy_id is not None:
        s._policy_id(c.policy_id, 0)  # a given id: checked, the index is not used


def _remove_policy(s: NetworkState, c: RemovePolicy) -> None:
    s._check_remove_policy(c)


_CHECKS: dict[type, Callable[[Any, Any], None]] = {
    CreateNetwork: _create_network, DeleteNetwork: _delete_network, UpdateNetwork: _update_network,
    Connect: _connect, Disconnect: _disconnect, SetQos: _set_qos, MoveEndpoint: _move_endpoint,
    AddPolicy: _add_policy, RemovePolicy: _remove_policy,
}
