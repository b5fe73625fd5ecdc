"""netops: kernel networking through netlink (pyroute2-style, batched) and nftables.

Knows nothing of meshd: a caller hands it a list of operations (netops._ops
dataclasses, re-exported here) and it applies them; ``dump_owned`` reads back
the objects netops owns, recognised by name prefix. Everything here is
synchronous; run it in a worker thread, one call per thread at a time.
"""

from netops._apply import VXLAN_READY, ApplyReport, OpFailure, apply, ensure_router, netns_path, remove_routers
from netops._dump import Actual, Counters, counters, counters_inside, dump_owned, rates
from netops._errors import NetopsError, UnsupportedSetting
from netops._ethtool import set_tx_csum_offload, tx_csum_offload
from netops._kernel import LINK_KINDS, describe_link_kind, probe_link_kinds
from netops._links import Link
from netops._macvlan import (
    MACVLAN_MODES,
    PROBE_ALIAS,
    MacvlanRecord,
    add_probe_macvlan,
    del_probe_macvlan,
    read_records,
)
from netops._nft import NftTable, dump_table, list_table
from netops._nft import run as nft_run
from netops._nl import InNetns as in_netns
from netops._nl import udp_socket
from netops._ops import (
    BRIDGE_PREFIX,
    LEG_PREFIX,
    NFT_TABLE,
    RECORDS_DIR,
    ROUTED_VXLAN_PREFIX,
    ROUTER_NETNS_PREFIX,
    UPLINK_PREFIX,
    VETH_PREFIX,
    VLAN_PREFIX,
    VXLAN_OVERHEAD,
    VXLAN_PREFIX,
    AttachEndpoint,
    AttachLeg,
    AttachMacvlan,
    AttachUplink,
    ClearQdisc,
    DeleteLink,
    DeleteRouter,
    DetachMacvlan,
    EnsureBridge,
    EnsureRouter,
    EnsureVlan,
    EnsureVxlan,
    FdbEntry,
    NeighEntry,
    NftScript,
    Op,
    Qos,
    Route,
    SetEndpointQos,
    SetMacvlanQos,
    SetTbf,
    bridge_name,
    is_owned_link,
    leg_name,
    routed_vxlan_name,
    vlan_name,
    vxlan_name,
)
from netops._routes import RTPROT_MESHD, RouteKey
from netops._underlay import MtuCheck, Underlay, check_path_mtu, underlay_for
from netops._vxlan import Neigh, parse_neigh

__all__ = [
    "EnsureVlan", "VLAN_PREFIX", "vlan_name", "counters_inside",
    "PROBE_ALIAS", "add_probe_macvlan", "del_probe_macvlan",
    "RECORDS_DIR", "AttachMacvlan", "DetachMacvlan", "SetMacvlanQos", "MACVLAN_MODES", "MacvlanRecord", "read_records",
    "Actual", "Link", "VXLAN_READY", "ApplyReport", "AttachEndpoint", "AttachLeg", "AttachUplink", "UPLINK_PREFIX",
    "BRIDGE_PREFIX", "ClearQdisc", "Counters",
    "DeleteLink", "LINK_KINDS", "describe_link_kind", "probe_link_kinds",
    "DeleteRouter", "EnsureBridge", "EnsureRouter", "EnsureVxlan", "FdbEntry", "LEG_PREFIX",
    "NFT_TABLE", "NftTable", "dump_table", "NeighEntry", "NetopsError", "NftScript", "Op", "OpFailure", "Qos",
    "ROUTER_NETNS_PREFIX", "SetEndpointQos",
    "SetTbf", "Underlay", "UnsupportedSetting", "VETH_PREFIX", "VXLAN_OVERHEAD", "VXLAN_PREFIX", "apply",
    "MtuCheck", "bridge_name", "check_path_mtu", "counters", "in_netns", "udp_socket", "dump_owned", "ensure_router",
    "is_owned_link",
    "leg_name", "list_table",
    "netns_path", "nft_run", "rates", "remove_routers", "set_tx_csum_offload", "tx_csum_offload", "underlay_for",
    "vxlan_name", "Neigh", "parse_neigh",
    "Route", "RouteKey", "RTPROT_MESHD", "ROUTED_VXLAN_PREFIX", "routed_vxlan_name",
]
