"""Pure conversions of the Docker integration: inspect documents, event messages, backoff."""

from __future__ import annotations

import random

import pytest

from meshd.runtime import EventKind, RuntimeEvent, backoff_delay, info_from_inspect, parse_event

CID = "9235" + "a" * 60


def inspect_doc(running: bool = True, pid: int = 4242) -> dict:
    """The fields meshd reads from a real `docker inspect` (dockerd 20.10, API 1.41)."""
    return {
        "Id": CID,
        "Name": "/web",
        "State": {"Status": "running" if running else "exited", "Running": running, "Paused": False,
                  "Pid": pid if running else 0, "ExitCode": 0},
        "Config": {"Labels": {"meshd.network": "red"}, "Env": ["TYPE=vlan", "X=a=b", "EMPTY=", "BARE"]},
        "HostConfig": {"NetworkMode": "none"},
    }  # fmt: skip


def test_info_from_inspect() -> None:
    info = info_from_inspect(inspect_doc())
    assert (info.id, info.name, info.pid, info.running, info.status) == (CID, "web", 4242, True, "running")
    assert dict(info.labels) == {"meshd.network": "red"}
    assert dict(info.env) == {"TYPE": "vlan", "X": "a=b", "EMPTY": "", "BARE": ""}
    assert info.network_mode == "none" and str(info) == f"web ({CID[:12]})"
    with pytest.raises(TypeError):
        info.labels["x"] = "y"  # type: ignore[index]  # read-only views


def test_info_from_inspect_of_a_stopped_container_has_no_pid() -> None:
    info = info_from_inspect(inspect_doc(running=False))
    assert (info.running, info.pid, info.status) == (False, 0, "exited")


def test_info_from_inspect_tolerates_null_labels_and_env() -> None:
    doc = inspect_doc()
    doc["Config"] = {"Labels": None, "Env": None}
    info = info_from_inspect(doc)
    assert dict(info.labels) == {} and dict(info.env) == {}


def event(action: str, **attrs: str) -> dict:
    """One message as dockerd 20.10 sends it on /events."""
    return {"status": action, "id": CID, "from": "meshd-busybox:latest", "Type": "container", "Action": action,
            "Actor": {"ID": CID, "Attributes": {"image": "meshd-busybox:latest", "name": "web", **attrs}},
            "scope": "local", "time": 1795329342, "timeNano": 1795329342066006006}  # fmt: skip


@pytest.mark.parametrize(
    ("action", "kind"),
    [("start", EventKind.STARTED), ("die", EventKind.STOPPED), ("restart", EventKind.RESTARTED),
     ("destroy", EventKind.REMOVED)],
)  # fmt: skip
def test_parse_event_kinds(action: str, kind: EventKind) -> None:
    ev = parse_event(event(action, **{"meshd.network": "red"}))
    assert ev == RuntimeEvent(kind, CID, "web", 1795329342066006006)
    assert dict(ev.labels) == {"meshd.network": "red"}  # image/name/exitCode are not labels


def test_parse_event_die_carries_the_exit_code() -> None:
    ev = parse_event(event("die", exitCode="137"))
    assert ev is not None and ev.exit_code == 137 and "exitCode" not in ev.labels
    assert parse_event(event("start", exitCode="1")).exit_code is None


def test_parse_event_does_not_modify_the_message() -> None:
    msg = event("die", exitCode="0")
    parse_event(msg)
    assert msg["Actor"]["Attributes"] == {"image": "meshd-busybox:latest", "name": "web", "exitCode": "0"}


@pytest.mark.parametrize(
    "msg",
    [
        event("stop"), event("kill", signal="9"), event("create"), event("exec_start: sh -c true"),
        {**event("start"), "Type": "network"}, {**event("start"), "Actor": None},
        {**event("start"), "Actor": {"ID": "", "Attributes": {}}}, {}, None, [], "start",
    ],
)  # fmt: skip
def test_parse_event_ignores_what_meshd_does_not_act_on(msg: object) -> None:
    assert parse_event(msg) is None


def test_backoff_grows_caps_and_jitters() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(a, rng, min_s=0.1, max_s=5.0) for a in range(12)]
    for attempt, d in enumerate(delays):
        base = min(5.0, 0.1 * 2**attempt)
        assert base * 0.5 <= d <= base
    assert max(delays) <= 5.0 and delays[-1] >= 2.5
    assert backoff_delay(10_000, rng, min_s=0.1, max_s=5.0) <= 5.0  # no overflow
    assert [backoff_delay(3, random.Random(9), min_s=0.1, max_s=5.0) for _ in range(2)] == [
        backoff_delay(3, random.Random(9), min_s=0.1, max_s=5.0)] * 2  # deterministic for a seed
