"""Docker side of the lab: the busybox test image and lab containers.

No registry is reachable, so the test image is built locally: a tarball of the
static busybox binary plus one symlink per applet, handed to `docker import`.
Containers run with `--network none` (meshd gives them their interfaces later)
and carry labels naming the lab prefix and the lab host, so a later `down`
finds them even when the process that made them crashed.
"""

from __future__ import annotations

import io
import os
import tarfile
from dataclasses import dataclass
from typing import Any

from tools.lab._sh import LabError, run

IMAGE = "meshd-busybox:latest"
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")
LABEL_PREFIX = "meshd.lab.prefix"
LABEL_HOST = "meshd.lab.host"
LABEL_NAME = "meshd.lab.name"
SLEEP_FOREVER = ("sleep", "2147483647")
EMPTY_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "root", "var", "proc", "sys", "dev")


@dataclass(frozen=True, slots=True)
class Container:
    """A Docker container started by the lab on one lab host.

    `name` is the short name given to `Lab.container`; `docker_name` is the
    container's name in Docker (`<prefix>-<host>-<name>`).
    """

    id: str
    name: str
    pid: int
    host: str
    docker_name: str = ""


def client() -> Any:
    """Return a docker SDK client for the local dockerd.

    Raises:
        LabError: dockerd is not reachable.
    """
    import docker  # imported here: the netns half of the lab works without it

    try:
        cli = docker.from_env(timeout=60)
        cli.ping()
    except docker.errors.DockerException as exc:
        raise LabError(f"dockerd is not running: start it with tools/setup.sh ({exc})") from exc
    return cli


def docker_available() -> bool:
    """True when dockerd answers a ping."""
    try:
        client()
    except LabError:
        return False
    return True


def find_busybox() -> str:
    """Return the path of a statically linked busybox (the image has no libc)."""
    for path in BUSYBOX_PATHS:
        if os.path.isfile(path):
            with open(path, "rb") as f:
                head = f.read(4096)  # a dynamic ELF names its loader (PT_INTERP) here
            if b"/ld-linux" not in head and b"/ld-musl" not in head:
                return path
    raise LabError("static busybox not found in /bin: install busybox-static (tools/setup.sh does)")


def busybox_rootfs_tar(busybox: str) -> bytes:
    """Build the image's root filesystem: busybox plus one symlink per applet."""
    applets = run([busybox, "--list-full"], what="busybox applet list").stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in EMPTY_DIRS:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            if applet == "bin/busybox":
                continue
            link = tarfile.TarInfo(applet)
            link.type, link.linkname = tarfile.SYMTYPE, "/bin/busybox"
            tar.addfile(link)
    return buf.getvalue()


def ensure_image(cli: Any | None = None) -> bool:
    """Import `meshd-busybox:latest` unless it exists; True when it was imported."""
    import docker

    cli = cli or client()
    try:
        cli.images.get(IMAGE)
        return False
    except docker.errors.ImageNotFound:
        pass  # import it below
    repo, tag = IMAGE.split(":")
    data = busybox_rootfs_tar(find_busybox())
    cli.api.import_image_from_data(data, repository=repo, tag=tag, changes=['CMD ["sh"]'])
    cli.images.get(IMAGE)  # raises if the import silently failed
    return True


def _as_container(c: Any) -> Container:
    labels = c.labels
    return Container(
        id=c.id,
        name=labels.get(LABEL_NAME, c.name),
        pid=int(c.attrs["State"]["Pid"]),
        host=labels.get(LABEL_HOST, ""),
        docker_name=c.name,
    )


def start_container(prefix: str, host: str, name: str) -> Container:
    """Start (or return the running) container `name` on lab host `host`."""
    import docker

    cli = client()
    docker_name = f"{prefix}-{host}-{name}"
    try:
        existing = cli.containers.get(docker_name)
    except docker.errors.NotFound:
        existing = None
    if existing is not None:
        if existing.status == "running" and existing.labels.get(LABEL_PREFIX) == prefix:
            return _as_container(existing)
        existing.remove(force=True)
    ensure_image(cli)
    c = cli.containers.run(
        IMAGE,
        list(SLEEP_FOREVER),
        name=docker_name,
        detach=True,
        network_mode="none",
        labels={LABEL_PREFIX: prefix, LABEL_HOST: host, LABEL_NAME: name},
    )
    c.reload()
    if c.status != "running":
        raise LabError(f"container {docker_name} did not start (status {c.status}): see `docker logs {docker_name}`")
    return _as_container(c)


def list_containers(prefix: str) -> list[Container]:
    """Every container (running or not) labelled with this lab prefix."""
    cli = client()
    found = cli.containers.list(all=True, filters={"label": f"{LABEL_PREFIX}={prefix}"})
    return sorted((_as_container(c) for c in found), key=lambda c: (c.host, c.name))


def remove_containers(prefix: str) -> int:
    """Force-remove every container of this lab; returns how many."""
    cli = client()
    found = cli.containers.list(all=True, filters={"label": f"{LABEL_PREFIX}={prefix}"})
    for c in found:
        c.remove(force=True)
    return len(found)


def lab_prefixes() -> set[str]:
    """Prefixes found on lab containers (also those whose namespaces are gone)."""
    return {c.labels[LABEL_PREFIX] for c in client().containers.list(all=True, filters={"label": LABEL_PREFIX})}
