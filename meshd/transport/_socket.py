"""trio over pyzmq: async send and receive on non-blocking ZeroMQ sockets.

Theory of operation
-------------------
pyzmq has no trio integration.  A ZeroMQ socket exposes ``ZMQ_FD``, a file
descriptor that becomes readable when the socket's *events may have changed*,
and ``ZMQ_EVENTS``, the real readiness (``POLLIN``/``POLLOUT``).  The FD is
edge-triggered in effect: reading ``ZMQ_EVENTS``, or any send or receive,
consumes the pending signal, so a task can sleep on the FD forever although a
message is already queued.  The rules this module follows:

* always try the non-blocking operation first; only on ``EAGAIN`` wait;
* before waiting on the FD, re-check ``ZMQ_EVENTS`` (the edge-trigger rule);
* after every successful send or receive, wake every task that is waiting on
  this socket so it re-checks ``ZMQ_EVENTS`` (our own operation may have
  consumed the signal it was waiting for);
* only one task waits on the FD at a time (trio allows one reader per FD);
  others park on a :class:`trio.lowlevel.ParkingLot` and are woken with it.

Cancellation: ``send_multipart``/``recv_multipart`` are atomic in ZeroMQ
(a multipart message is queued or received whole).  We check for cancellation
*before* the operation and, when the operation did not have to wait, yield
with a shielded checkpoint *after* it (a wait already yielded), so a
cancelled :meth:`TrioSocket.recv_multipart` has received nothing (the message
stays queued for the next call) and a cancelled :meth:`TrioSocket.send_multipart`
has sent nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import trio
import zmq


class TrioSocket:
    """A ZeroMQ socket usable from trio tasks.

    One task may receive while another sends.  The wrapped socket must not be
    used directly from other threads.  Close it with :meth:`close` (LINGER
    applies as set on the socket).
    """

    def __init__(self, sock: zmq.Socket) -> None:
        self._sock = sock
        self._fd = sock.fileno()  # its ZMQ_FD
        self._fd_scope: trio.CancelScope | None = None
        self._lot = trio.lowlevel.ParkingLot()
        self._closed = False

    @property
    def zmq_socket(self) -> zmq.Socket:
        """The underlying pyzmq socket (for setting options and bind/connect)."""
        return self._sock

    @property
    def closed(self) -> bool:
        return self._closed

    async def recv_multipart(self) -> list[bytes]:
        """Receive one whole multipart message.

        Raises:
          trio.ClosedResourceError: the socket was closed (by us).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        blocked = False
        while True:
            self._check_open()
            # ZMQ_EVENTS first: a failed non-blocking recv raises zmq.Again, which
            # costs more than the whole successful path
            if self._events() & zmq.POLLIN:
                try:
                    frames = self._sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    pass  # EVENTS said POLLIN but another reader was first: wait below
                else:
                    self._wake_waiters()
                    if not blocked:  # every trio operation yields at least once
                        await trio.lowlevel.cancel_shielded_checkpoint()
                    return frames
            await self._wait(zmq.POLLIN)
            blocked = True

    def recv_multipart_nowait(self) -> list[bytes]:
        """Receive one message if one is queued.

        Raises:
          trio.WouldBlock: nothing is queued.
        """
        self._check_open()
        try:
            frames = self._sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            raise trio.WouldBlock from None
        self._wake_waiters()
        return frames

    async def send_multipart(self, frames: Sequence[bytes]) -> None:
        """Queue one multipart message, waiting while the send HWM is reached."""
        await trio.lowlevel.checkpoint_if_cancelled()
        blocked = False
        while True:
            self._check_open()
            try:
                self._sock.send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:
                await self._wait(zmq.POLLOUT)
                blocked = True
                continue
            self._wake_waiters()
            if not blocked:
                await trio.lowlevel.cancel_shielded_checkpoint()
            return

    def send_multipart_nowait(self, frames: Sequence[bytes]) -> None:
        """Queue one multipart message now or not at all.

        Raises:
          trio.WouldBlock: the HWM is reached or (with IMMEDIATE) no peer is
            connected yet; nothing was queued.
          zmq.ZMQError: e.g. EHOSTUNREACH on a ROUTER with ROUTER_MANDATORY.
        """
        self._check_open()
        try:
            self._sock.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            raise trio.WouldBlock from None
        self._wake_waiters()

    def close(self) -> None:
        """Close the socket; tasks blocked in send or receive get ClosedResourceError."""
        if self._closed:
            return
        self._closed = True
        if self._fd_scope is not None:
            trio.lowlevel.notify_closing(self._fd)
        self._lot.unpark_all()
        self._sock.close()

    # --- internals ----------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this ZeroMQ socket was closed")

    def _wake_waiters(self) -> None:
        if self._fd_scope is not None:
            self._fd_scope.cancel()
        self._lot.unpark_all()

    def _events(self) -> int:
        try:
            return cast(int, self._sock.getsockopt(zmq.EVENTS))  # an int option
        except zmq.ZMQError as exc:  # the context was terminated under us
            self._closed = True
            raise trio.ClosedResourceError(f"ZeroMQ socket is gone: {exc}") from None

    async def _wait(self, flag: int) -> None:
        """Return once ZMQ_EVENTS has ``flag`` (or might have: callers retry)."""
        while not self._closed and not (self._events() & flag):
            if self._fd_scope is not None:
                await self._lot.park()
                continue
            with trio.CancelScope() as scope:
                self._fd_scope = scope
                try:
                    await trio.lowlevel.wait_readable(self._fd)
                except trio.ClosedResourceError:
                    pass  # close() while waiting: the loop condition raises it properly
                finally:
                    self._fd_scope = None
                    self._lot.unpark_all()
        if self._closed:
            raise trio.ClosedResourceError("this ZeroMQ socket was closed")
