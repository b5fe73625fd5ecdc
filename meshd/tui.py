"""``meshd top``: a live status view of this host's agent.

It polls ``QUERY_STATUS`` on the root-only control socket every
``interval_s`` (each poll bounded by a timeout, so a busy or dead agent never
freezes the screen: the header then says how old the data is) and renders the
status map with rich.  The status map is what the agent's ``status()``
returns (docs/api.md, QUERY_STATUS); every section is optional, so the view
shows whatever the agent reports:

``host``, ``version``, ``uptime_s``; ``members`` (name, state, incarnation,
address, role); ``raft`` (role, term, leader, commit_index, applied_index,
followers: id, match, lag); ``networks`` (name, tenant, subnet, vni, used,
free); ``endpoints`` (endpoint_id, network, ip, mac, rx_bps, tx_bps);
``tunnels`` (vni, peers, fdb_entries); ``events`` (time, kind, text).

Ctrl-C exits cleanly; ``--once`` prints one frame and exits (for scripts).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from rich.console import Console, Group
from rich.layout import Layout
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from meshd.api import MsgType

Poll = Callable[[], dict[str, Any]]

_STATE_STYLE = {"alive": "green", "suspect": "yellow", "dead": "red", "failed": "red", "left": "dim"}


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title, expand=True, title_justify="left", show_edge=False, pad_edge=False)
    for col in columns:
        table.add_column(col, overflow="ellipsis", no_wrap=True)
    for row in rows:
        table.add_row(*(c if isinstance(c, Text) else Text("" if c is None else str(c)) for c in row))
    if not rows:
        table.add_row(*([Text("—", style="dim")] + [Text("")] * (len(columns) - 1)))
    return table


def _rate(bps: Any) -> str:
    if not isinstance(bps, (int, float)):
        return ""
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps * 8 >= scale:
            return f"{bps * 8 / scale:.1f} {unit}"
    return f"{bps * 8:.0f} bit/s"


def members_view(status: dict[str, Any]) -> Table:
    rows = [[m.get("name"), Text(str(m.get("state", "")), style=_STATE_STYLE.get(str(m.get("state")), "")),
             m.get("incarnation"), m.get("address"), m.get("role")] for m in status.get("members", [])]
    return _table("Members", ["name", "state", "inc", "address", "role"], rows)


def raft_view(status: dict[str, Any]) -> Group:
    r = status.get("raft", {})
    head = Text.assemble(("Raft  ", "bold"), f"role={r.get('role', '?')} term={r.get('term', '?')} "
                         f"leader={r.get('leader', '?')} commit={r.get('commit_index', '?')} "
                         f"applied={r.get('applied_index', '?')}")
    rows = [[f.get("id"), f.get("match"), f.get("lag")] for f in r.get("followers", [])]
    return Group(head, _table("Followers", ["id", "match", "lag"], rows))


def networks_view(status: dict[str, Any]) -> Table:
    rows = [[n.get("name"), n.get("tenant"), n.get("subnet"), n.get("vni"), n.get("used"), n.get("free")]
            for n in status.get("networks", [])]
    return _table("Networks", ["name", "tenant", "subnet", "vni", "used", "free"], rows)


def endpoints_view(status: dict[str, Any]) -> Table:
    rows = [[e.get("endpoint_id", "")[:12], e.get("network"), e.get("ip"), e.get("mac"),
             _rate(e.get("rx_bps")), _rate(e.get("tx_bps"))] for e in status.get("endpoints", [])]
    return _table("Local endpoints", ["container", "network", "ip", "mac", "rx", "tx"], rows)


def tunnels_view(status: dict[str, Any]) -> Table:
    rows = [[t.get("vni"), ",".join(map(str, t.get("peers", []))), t.get("fdb_entries")]
            for t in status.get("tunnels", [])]
    return _table("Tunnels", ["vni", "peers", "fdb"], rows)


def events_view(status: dict[str, Any], limit: int = 12) -> Table:
    rows = [[time.strftime("%H:%M:%S", time.localtime(e.get("time", 0))), e.get("kind"), e.get("text")]
            for e in status.get("events", [])[-limit:]]
    return _table("Recent events", ["time", "kind", "event"], rows)


def render(status: dict[str, Any], note: str = "") -> Layout:
    """The whole screen for one status map (pure: testable without a terminal)."""
    header = Text.assemble(("meshd top  ", "bold cyan"), f"host={status.get('host', '?')} ",
                           f"version={status.get('version', '?')} uptime={status.get('uptime_s', 0):.0f}s  ",
                           (note, "bold red" if note else ""))
    layout = Layout()
    layout.split_column(Layout(header, size=1), Layout(name="top"), Layout(name="bottom"))
    layout["top"].split_row(Layout(Panel(members_view(status))), Layout(Panel(raft_view(status))))
    layout["bottom"].split_row(
        Layout(Panel(Group(networks_view(status), tunnels_view(status)))),
        Layout(Panel(Group(endpoints_view(status), events_view(status)))))
    return layout


def run_top(poll: Poll, *, interval_s: float = 1.0, once: bool = False, console: Console | None = None) -> int:
    """Poll and draw until Ctrl-C (or one frame with ``once``)."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # a log or a pipe: room for every column
            console = Console(width=160, height=40)
    status: dict[str, Any] = {}
    last_ok = 0.0

    def refresh() -> Layout:
        nonlocal status, last_ok
        try:
            status, last_ok = poll(), time.monotonic()
            note = ""
        except (TimeoutError, OSError) as exc:
            age = "never" if not last_ok else f"{time.monotonic() - last_ok:.0f}s ago"
            note = f"agent not answering (last update {age}): {exc}"
        return render(status, note)

    if once:
        console.print(refresh())
        return 0 if last_ok else 1
    try:
        with Live(refresh(), console=console, screen=True, auto_refresh=False) as live:
            while True:
                time.sleep(interval_s)
                live.update(refresh(), refresh=True)
    except KeyboardInterrupt:
        return 0


def control_poll(run_dir: str, timeout_s: float) -> Poll:
    """A poll function reading QUERY_STATUS from the local agent."""
    from meshd.api.client import SchedulerClient

    def poll() -> dict[str, Any]:
        client = SchedulerClient.local(run_dir, timeout_s=timeout_s)
        try:
            return client.request(MsgType.QUERY_STATUS)
        finally:
            client.close()

    return poll
