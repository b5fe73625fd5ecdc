"""meshd: a peer-to-peer container-network daemon.

One daemon per worker host: SWIM gossip for membership (meshd.gossip), an
embedded Raft log (the ``consensus`` package) replicating the network state
(meshd.state), and a per-host data plane built by ``netops``.
"""

__version__ = "0.1.0"
