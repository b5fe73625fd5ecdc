"""meshd.agent: the daemon that wires gossip, Raft, the state, the reconciler and the APIs."""
