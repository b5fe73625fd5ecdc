"""Errors of the Docker integration.  Each names the container and says what to do.

Two families, as h11 splits local from remote faults:

* :class:`DockerError` and its subclasses: talking to dockerd failed or the
  container is not in a state meshd can use (not found, not running).  Raised by
  :class:`~meshd.runtime.DockerRuntime`; the caller can retry or report.
* :class:`SpecError`: the container's own labels or environment are wrong (the
  operator's fault).  Raised by the pure :func:`~meshd.runtime.parse_spec`; the
  watcher turns it into ``on_container_invalid`` and never lets it escape.
"""

from __future__ import annotations


class DockerError(Exception):
    """Base of the errors raised while talking to dockerd."""


class DockerUnavailable(DockerError):
    """dockerd is not reachable (not running, socket missing, connection dropped)."""


class DockerApiError(DockerError):
    """dockerd answered with an error other than "not found"."""


class ContainerNotFound(DockerError):
    """No container of that id or name exists on this host."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(
            f"container {ref!r} not found on this host: check the name or id with `docker ps -a`"
        )


class ContainerNotRunning(DockerError):
    """The container exists but has no process (created, exited or dead)."""

    def __init__(self, ref: str, status: str) -> None:
        self.ref = ref
        self.status = status
        super().__init__(f"container {ref} is not running (status {status}): start it first (docker start {ref})")


class SpecError(ValueError):
    """A container's meshd labels or seed-002 environment variables are invalid.

    Attributes:
        container: the container's name (or id when it has none).
        key: the label (``meshd.ip``) or environment variable (``env IP``) at fault.
        value: the offending value as given ("" when the key is missing).
        problem: what is wrong, in plain words.
        fix: what the operator should do.
    """

    def __init__(self, container: str, key: str, value: str, problem: str, fix: str) -> None:
        self.container = container
        self.key = key
        self.value = value
        self.problem = problem
        self.fix = fix
        shown = f"{key}={value!r}" if value else key
        super().__init__(f"container {container}: {shown} {problem}: {fix}")
