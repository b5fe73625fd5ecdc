"""meshd top at fixed screen sizes: what an operator must see fits 80×24, more shows at 200×50,
newest events first, sections fold with `… N more`; an agent that does not answer is said."""

from __future__ import annotations

from rich.console import Console

from meshd.tui import render, run_top

NOW = 1_800_000_000.0


def status(endpoints: int = 3, events: int = 20, members: int = 3, **extra):
    return {
        "host": "h1", "advertise": "192.0.2.11", "version": "0.1.0", "uptime_s": 4242.0,
        "members": [{"name": f"h{i}", "state": "alive", "incarnation": 3, "address": f"192.0.2.{10 + i}",
                     "version": "0.1.0"} for i in range(1, members + 1)],
        "raft": {"role": "leader", "term": 7, "leader": "h1", "commit_index": 120, "applied_index": 119,
                 "voters": ["h1", "h2", "h3"], "learners": [], "followers": [{"id": "h2", "match": 118, "lag": 2}]},
        "networks": [{"name": "blue", "tenant": "tenant-a", "subnet": "10.1.0.0/24", "vni": 100, "used": 2,
                      "free": 251},
                     {"name": "red", "tenant": "tenant-b", "subnet": "10.1.0.0/24", "vni": 101, "used": 1,
                      "free": 252}],
        "endpoints": [{"endpoint_id": f"{i:02d}23456789abcdef", "container": f"web-{i}", "network": "blue",
                       "vni": 100, "ip": f"10.1.0.{i + 2}", "mac": f"02:6d:0a:01:00:{i + 2:02x}", "running": True,
                       "up": True, "rate_kbit": 10_000, "rx_bps": 1_250_000 * (i + 1), "tx_bps": 125}
                      for i in range(endpoints)],
        "tunnels": [{"vni": 100, "peers": ["192.0.2.12"], "fdb_entries": 3}],
        "reconcile": {"passes": 9, "last_errors": [], "last_pass_ms": 12.0},
        "events": [{"time": NOW - 100 + i, "kind": "state", "text": f"event number {i:02d}"} for i in range(events)],
        **extra,
    }


def screen(st, width, height, note=""):
    console = Console(record=True, width=width, height=height)
    console.print(render(st, note, width=width, height=height, now=NOW))
    lines = console.export_text().rstrip("\n").split("\n")
    assert len(lines) <= height, f"{len(lines)} lines on a {height}-line screen"
    assert all(len(line) <= width for line in lines), max(lines, key=len)
    return "\n".join(lines)


def test_80x24_shows_what_an_operator_needs():
    text = screen(status(), 80, 24)
    for i in range(3):  # every endpoint: container, IP and rates, uncut
        assert f"web-{i}" in text and f"10.1.0.{i + 2} " in text
    assert "10.0M" in text and "20.0M" in text and "1.0k" in text  # rx/tx, abbreviated
    for i in (1, 2, 3):
        assert f"h{i}" in text and f"192.0.2.{10 + i}" in text
    assert "alive" in text and "leader" in text and "term 7" in text
    assert "blue" in text and "red" in text and "10.1.0.0/24" in text
    assert "event number 19" in text  # the newest event is shown, first
    assert text.index("event number 19") < text.index("event number 18")
    assert "event number 00" not in text and "more" in text  # the oldest fold away


def test_200x50_shows_every_column_and_event():
    text = screen(status(), 200, 50)
    for fragment in ("02:6d:0a:01:00:02", "10 Mbit/s", "tenant-a", "10.0 Mbit/s", "1.0 kbit/s", "VERSION",
                     "event number 00", "event number 19", "PEERS"):
        assert fragment in text, fragment
    assert text.index("event number 19") < text.index("event number 00")
    assert "more" not in text


def test_many_endpoints_fold_and_unhealthy_members_come_first():
    st = status(endpoints=40, members=30)
    st["members"][17]["state"] = "failed"
    text = screen(st, 80, 24)
    assert "h18" in text and "failed" in text  # the failed member is kept, the alive ones fold
    assert "more" in text and "10.1.0.2 " in text
    assert "event number 19" in text  # events keep at least a few lines


def test_health_problems_are_in_the_summary():
    st = status(reconcile={"passes": 9, "last_errors": ["mb-100: File exists"], "last_pass_ms": 3.0,
                           "mtu_failures": 2, "mtu_problems": [{"host": "h3", "networks": ["blue"]}]},
                attach=[{"container_id": "0023456789abcdef", "network": "blue", "step": "interface",
                         "error": "veth: File exists"}])
    st["raft"]["leader"] = None
    text = screen(st, 80, 24)
    assert "raft NO LEADER (term 7)" in text
    assert "reconcile FAILING (1 errors)" in text and "MTU too large for h3" in text
    assert "1 without network (meshd why)" in text and "FAILED" in screen(st, 200, 50)


def test_tiny_and_empty_screens_render():
    assert "meshd top" in screen({}, 80, 24)
    assert "meshd top" in screen(status(), 40, 10)


def test_agent_not_answering_is_said_and_exit_code_is_1():
    console = Console(record=True, width=120, height=30)

    def poll():
        raise TimeoutError("no answer from the meshd agent at ipc:///run/meshd/control.sock")

    assert run_top(poll, once=True, console=console) == 1
    assert "agent not answering (last update never)" in console.export_text()
    assert run_top(lambda: status(), once=True, console=console) == 0
