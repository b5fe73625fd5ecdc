"""Host liveness: a host is not its agent.

Theory of operation
-------------------
Gossip says whether a host's *agent* answers. Whether its *data plane*
answers is a separate, cheap question that the host's kernel answers without
the agent: an ICMP echo to its VTEP address (the driver,
:class:`~meshd.agent._probe.DataPlaneProbe`, sends them). This core combines
the two into one verdict per host, and every other host's FDB and neighbour
entries follow the verdict, not gossip alone:

==============  =================================================  ===========
state           when                                               entries
==============  =================================================  ===========
``alive``       gossip: alive                                      kept
``suspect``     gossip: suspect; or dead and the probe undecided   kept
``agent-down``  gossip: dead, the data plane answered              kept
``failed``      gossip: dead, the data plane silent for            withdrawn
                ``timeout_s``; or agent-down longer than ``grace_s``
``left``        gossip: left gracefully (``meshd leave``)          withdrawn
==============  =================================================  ===========

A host is probed while gossip suspects it or says it is dead (and not yet
withdrawn): every ``interval_s`` while it is undecided, every
``agent_down_interval_s`` once it is *agent-down* (its verdict is given; the
probes only watch for its data plane to go too, and every other host sends
them: with 200 hosts, half of them falsely declared dead, every 0.2 s would be
200 × 100 × 5 = 100,000 echo requests a second). Probing starts at *suspect*,
so when gossip declares a really dead machine dead its data plane has been
silent for the whole suspicion time already and it is withdrawn on the next :meth:`tick` (at
worst, for a host first learned as dead, ``timeout_s`` later). ``failed`` is
final until gossip sees the host alive again: a machine that reboots comes
back through its agent, not through its kernel alone.

*Silent* is measured from the probes, not from the clock alone: a data plane
is silent when a probe sent at least ``timeout_s`` ago (:meth:`on_sent`) has
had no answer since, and a second probe has gone unanswered too (one lost echo
is no verdict). An agent whose own loop runs late (a CPU-starved host, a
long pause) sends fewer probes and reads their answers late; counting from
when probing *started* turned that lateness into "silent" and withdrew hosts
whose data plane was fine (docs/scale.md). For the same reason a silence
verdict is only given by :meth:`tick`, which the driver calls after reading
every answer that has arrived; a gossip change decides only *agent-down*.

Pure: no clock, no I/O; ``now`` is a parameter. Every call returns the
:class:`Transition`\\ s it caused, for the agent's events and a reconcile pass.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class HostState(enum.StrEnum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    AGENT_DOWN = "agent-down"
    FAILED = "failed"
    LEFT = "left"


#: states whose hosts keep their entries everywhere
KEPT = frozenset({HostState.ALIVE, HostState.SUSPECT, HostState.AGENT_DOWN})


class Gossip(enum.StrEnum):
    """What gossip says of a host's agent."""

    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"


@dataclass(frozen=True, slots=True)
class Transition:
    name: str
    vtep: str
    old: HostState | None
    new: HostState
    reason: str


@dataclass(slots=True)
class _Host:
    vtep: str
    gossip: Gossip
    state: HostState
    dead_since: float | None = None
    probing_since: float | None = None
    last_answer: float | None = None
    #: when the oldest probe with no answer after it was sent (None: every probe sent was answered)
    unanswered_since: float | None = None
    unanswered: int = 0  #: probes sent since the last answer
    last_sent: float | None = None


class Liveness:
    """The verdict per host; see the module docstring.

    Args:
        timeout_s: a probed data plane that answered nothing for this long (and two probes) is gone.
        grace_s: an agent down longer than this is treated as failed, whatever its data plane does.
        interval_s: probe period of an undecided host.
        agent_down_interval_s: probe period of an agent-down host.
        probing: False when this host cannot probe (no raw sockets): a dead agent's host is then
            withdrawn at once (no answer can come).
    """

    def __init__(self, *, timeout_s: float, grace_s: float, interval_s: float = 0.2,
                 agent_down_interval_s: float = 1.0, probing: bool = True) -> None:
        self.timeout_s = timeout_s
        self.grace_s = grace_s
        self.interval_s = interval_s
        self.agent_down_interval_s = agent_down_interval_s
        self.probing = probing
        self._hosts: dict[str, _Host] = {}

    # --- inputs -------------------------------------------------------------------------

    def on_gossip(self, name: str, vtep: str, gossip: Gossip, now: float) -> list[Transition]:
        """Gossip changed its view of ``name`` (whose VTEP is ``vtep``)."""
        host = self._hosts.get(name)
        if host is None:
            host = self._hosts[name] = _Host(vtep, gossip, HostState.ALIVE)
            old: HostState | None = None
        else:
            old = host.state
        if host.vtep != vtep:
            host.vtep = vtep
            self._reset_probes(host)
        host.gossip = gossip
        if gossip is Gossip.ALIVE:
            host.dead_since = host.probing_since = None
            self._reset_probes(host)
            return self._to(name, host, old, HostState.ALIVE, "its agent answers")
        if gossip is Gossip.LEFT:
            host.dead_since = host.probing_since = None
            self._reset_probes(host)
            return self._to(name, host, old, HostState.LEFT, "it left the cluster")
        if host.probing_since is None:
            host.probing_since = now
        if gossip is Gossip.SUSPECT:
            host.dead_since = None
            return self._to(name, host, old, HostState.SUSPECT, "gossip suspects its agent")
        if host.dead_since is None:
            host.dead_since = now
        if old is None:  # first learned as dead: undecided until the probe says
            return self._to(name, host, old, HostState.SUSPECT, "gossip says its agent is dead; probing")
        return self._decide(name, host, now, silence=False)  # answers may be unread yet: tick() judges silence

    def on_sent(self, vteps: set[str], now: float) -> None:
        """Probes to ``vteps`` went out (or failed to: no route is an answer of silence too)."""
        for host in self._hosts.values():
            if host.vtep in vteps and host.probing_since is not None:
                host.last_sent = now
                host.unanswered += 1
                if host.unanswered_since is None:
                    host.unanswered_since = now

    def on_answers(self, vteps: set[str], now: float) -> list[Transition]:
        """The data planes at ``vteps`` answered a probe."""
        out: list[Transition] = []
        for name, host in self._hosts.items():
            if host.vtep in vteps and host.probing_since is not None:
                host.last_answer, host.unanswered_since, host.unanswered = now, None, 0
                if host.gossip is Gossip.DEAD:
                    out += self._decide(name, host, now, silence=False)
        return out

    def tick(self, now: float) -> list[Transition]:
        """Verdicts that time changes (silence, grace); call it after feeding every answer received."""
        out: list[Transition] = []
        for name, host in self._hosts.items():
            if host.gossip is Gossip.DEAD:
                out += self._decide(name, host, now)
        return out

    def forget(self, name: str) -> None:
        """``name`` is no member any more (gossip reaped it)."""
        self._hosts.pop(name, None)

    # --- outputs ------------------------------------------------------------------------

    def state(self, name: str) -> HostState | None:
        host = self._hosts.get(name)
        return None if host is None else host.state

    def kept_vteps(self) -> dict[str, str]:
        """``{name: VTEP}`` of the hosts whose entries are kept."""
        return {name: h.vtep for name, h in self._hosts.items() if h.state in KEPT}

    def busy(self) -> bool:
        """Whether a probe or :meth:`tick` has anything to do: a host is probed, or gossip says it
        is dead and no verdict is final.  When not, the driver sleeps until gossip changes."""
        return any((h.probing_since is not None and h.state in KEPT)
                   or (h.gossip is Gossip.DEAD and h.state not in (HostState.FAILED, HostState.LEFT))
                   for h in self._hosts.values())

    def to_probe(self, now: float) -> list[str]:
        """VTEPs to probe now: hosts gossip suspects or says are dead, not withdrawn yet, whose
        period (``interval_s``, or ``agent_down_interval_s`` once agent-down) has come."""
        if not self.probing:
            return []
        due: set[str] = set()
        for h in self._hosts.values():
            if h.probing_since is None or h.state not in KEPT or not h.vtep:
                continue
            period = self.agent_down_interval_s if h.state is HostState.AGENT_DOWN else self.interval_s
            if h.last_sent is None or now - h.last_sent >= period - 1e-9:
                due.add(h.vtep)
        return sorted(due)

    # --- rules --------------------------------------------------------------------------

    def _decide(self, name: str, host: _Host, now: float, *, silence: bool = True) -> list[Transition]:
        """A host gossip says is dead: agent-down while its data plane answers, failed once it is
        silent (judged only when ``silence``: by :meth:`tick`, after the answers are read)."""
        assert host.dead_since is not None and host.probing_since is not None
        if host.state in (HostState.FAILED, HostState.LEFT):
            return []
        if now - host.dead_since >= self.grace_s:
            return self._to(name, host, host.state, HostState.FAILED,
                            f"its agent has been down for {self.grace_s:g}s (dataplane.agent_down_grace_s)")
        if not self.probing:  # no answer can come
            return self._to(name, host, host.state, HostState.FAILED, "its agent is down, no probe")
        silent = (host.unanswered >= 2 and host.unanswered_since is not None
                  and now - host.unanswered_since >= self.timeout_s)
        if silence and silent:
            return self._to(name, host, host.state, HostState.FAILED,
                            f"its agent is down, its data plane silent for {self.timeout_s:g}s")
        if host.last_answer is not None and not silent:
            return self._to(name, host, host.state, HostState.AGENT_DOWN,
                            "its agent is down, its data plane answers")
        return []  # still probing

    @staticmethod
    def _reset_probes(host: _Host) -> None:
        host.last_answer = host.unanswered_since = host.last_sent = None
        host.unanswered = 0

    def _to(self, name: str, host: _Host, old: HostState | None, new: HostState, reason: str) -> list[Transition]:
        host.state = new
        if old is new:
            return []
        return [Transition(name, host.vtep, old, new, reason)]
