"""The one way a state command reaches the Raft log, for every door (API, control socket, Docker).

:meth:`Committer.commit` proposes a :mod:`meshd.state` command from any host
(a follower forwards it to the leader; the Raft session makes a retried
proposal apply once), waits at most ``raft.propose_timeout_s`` and returns the
typed result. When the cluster cannot commit (no leader, no quorum, timeout)
it raises :class:`meshd.api.Unavailable`, whichever door the command came in by.
"""

from __future__ import annotations

import consensus
from meshd import state as st
from meshd.api import Unavailable

from ._replica import Replica


class Committer:
    """Commits state commands through this host's :class:`Replica`."""

    def __init__(self, replica: Replica, *, timeout_s: float) -> None:
        self._replica = replica
        self._timeout_s = timeout_s

    async def commit(self, command: st.Command) -> st.Result | st.CommandError:
        """Commit ``command``; its result, or the state's refusal as a :class:`meshd.state.CommandError`.

        Raises:
          Unavailable: the cluster cannot commit now; a retry may succeed.
        """
        try:
            result = await self._replica.raft.propose(st.encode_command(command), timeout_s=self._timeout_s)
        except (consensus.Unavailable, consensus.SessionExpired) as exc:
            raise Unavailable(str(exc)) from None
        return st.decode_result(result)
