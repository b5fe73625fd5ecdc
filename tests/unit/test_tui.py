"""meshd top: renders every section of a status map; survives an agent that does not answer."""

from rich.console import Console

from meshd.tui import render, run_top

STATUS = {
    "host": "h1", "version": "0.1.0", "uptime_s": 42.0,
    "members": [{"name": "h1", "state": "alive", "incarnation": 3, "address": "192.0.2.11", "role": "voter"},
                {"name": "h2", "state": "suspect", "incarnation": 1, "address": "192.0.2.12", "role": "learner"}],
    "raft": {"role": "leader", "term": 7, "leader": "h1", "commit_index": 120, "applied_index": 119,
             "followers": [{"id": "h2", "match": 118, "lag": 2}]},
    "networks": [{"name": "blue", "tenant": "t1", "subnet": "10.1.0.0/24", "vni": 100, "used": 2, "free": 251}],
    "endpoints": [{"endpoint_id": "0123456789abcdef", "network": "blue", "ip": "10.1.0.2",
                   "mac": "02:6d:0a:01:00:02", "rx_bps": 1_250_000, "tx_bps": 125}],
    "tunnels": [{"vni": 100, "peers": ["192.0.2.12"], "fdb_entries": 3}],
    "events": [{"time": 0, "kind": "join", "text": "h2 joined"}],
}


def _text(renderable):
    console = Console(record=True, width=200, height=40)
    console.print(renderable)
    return console.export_text()


def test_every_section_is_shown():
    text = _text(render(STATUS))
    for fragment in ("host=h1", "192.0.2.12", "suspect", "role=leader term=7", "commit=120", "h2", "10.1.0.0/24",
                     "251", "0123456789ab", "10.0 Mbit/s", "1.0 kbit/s", "h2 joined", "fdb"):
        assert fragment in text, fragment


def test_empty_status_renders():
    assert "meshd top" in _text(render({}))


def test_agent_not_answering_is_said_and_exit_code_is_1():
    console = Console(record=True, width=200, height=40)

    def poll():
        raise TimeoutError("no answer from the meshd agent at ipc:///run/meshd/control.sock")

    assert run_top(poll, once=True, console=console) == 1
    assert "agent not answering (last update never)" in console.export_text()
    assert run_top(lambda: STATUS, once=True, console=console) == 0
