"""The one way a state command reaches the Raft log, for every door (API, control socket, Docker).

:meth:`Committer.commit` proposes a :mod:`meshd.state` command from any host
(a follower forwards it to the leader; the Raft session makes a retried
proposal apply once), waits at most ``raft.propose_timeout_s`` and returns the
typed result. When the cluster cannot commit (no leader, no quorum, timeout)
it raises :class:`meshd.api.Unavailable`, whichever door the command came in by.

A command the state would refuse costs no log entry when the local replica
can tell (:func:`meshd.state.precheck`): the replica is first brought up to
date with a Raft read barrier (it may lag: a network created a moment ago
through another host), and the refusal is answered only if it still holds.
"""

from __future__ import annotations

from collections import Counter

import consensus
from meshd import state as st
from meshd.api import Unavailable

from ._replica import Replica


class Committer:
    """Commits state commands through this host's :class:`Replica`."""

    def __init__(self, replica: Replica, *, timeout_s: float) -> None:
        self._replica = replica
        self._timeout_s = timeout_s
        #: committed, refused_locally (a rejection that cost no log entry), rejected (by the log), unavailable
        self.counters: Counter[str] = Counter()

    async def commit(self, command: st.Command) -> st.Result | st.CommandError:
        """Commit ``command``; its result, or the state's refusal as a :class:`meshd.state.CommandError`.

        Raises:
          Unavailable: the cluster cannot commit now; a retry may succeed.
        """
        raft = self._replica.raft
        try:
            if st.precheck(self._replica.state, command) is not None:
                await raft.read_barrier(timeout_s=self._timeout_s)
                refusal = st.precheck(self._replica.state, command)
                if refusal is not None:
                    self.counters["refused_locally"] += 1
                    return refusal
            result = st.decode_result(await raft.propose(st.encode_command(command), timeout_s=self._timeout_s))
        except (consensus.Unavailable, consensus.SessionExpired) as exc:
            self.counters["unavailable"] += 1
            raise Unavailable(str(exc)) from None
        self.counters["rejected" if isinstance(result, st.CommandError) else "committed"] += 1
        return result
