"""The steps of attaching a container to a network, as the status map's ``attach`` key names them.

Shared by the agent (:mod:`meshd.agent._status`, which reports them) and the
CLI (``meshd why``, which explains them), so neither imports the other.

In order: ``labels`` (the container's ``meshd.*`` labels or seed-002
variables parse), ``address`` (the connect was committed: an IP is
allocated), ``running`` (the container runs on this host and its PID is
known), ``interface`` (a reconcile pass built its interface), and ``up`` when
every step is done.
"""

ATTACH_STEPS = ("labels", "address", "running", "interface", "up")
LABELS, ADDRESS, RUNNING, INTERFACE, UP = ATTACH_STEPS
