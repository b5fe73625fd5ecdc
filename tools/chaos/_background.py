"""A context manager that runs one daemon thread of a chaos run until its ``with`` block ends."""

from __future__ import annotations

import abc
import threading
from typing import Self


class Background(abc.ABC):
    """``with obj:`` runs ``obj.loop(stop)`` in a daemon thread; on exit it sets ``stop``, joins the
    thread and calls ``close()`` (sockets made in ``__init__`` are released there)."""

    thread_name = "chaos"

    def __enter__(self) -> Self:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.loop, args=(self._stop,), name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.close()

    @abc.abstractmethod
    def loop(self, stop: threading.Event) -> None:
        """The thread's work; returns soon after ``stop`` is set."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what ``__init__`` made."""
