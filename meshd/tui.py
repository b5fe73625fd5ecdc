"""``meshd top``: a live status view of this host's agent.

It polls ``QUERY_STATUS`` on the root-only control socket every
``interval_s`` (each poll bounded by a timeout, so a busy or dead agent never
freezes the screen: a line then says how old the data is) and draws the
status map (docs/api.md, QUERY_STATUS); every key is optional, so the view
shows whatever the agent reports.

Theory of operation
-------------------
:func:`render` is pure: a status map and a screen size in, exactly the lines
that fit out (rich :class:`~rich.text.Text`), so it is tested at fixed sizes.

* Two header lines: this host, then the health summary (Raft role and
  leader, members alive, reconcile health, path-MTU failures, containers
  without their network).  Pieces wrap whole onto a second line when narrow.
* Sections: members, local endpoints, networks (with their tunnels), recent
  events (newest first).  Below 160 columns they stack; from 160 columns
  members and networks go left, endpoints and events right.
* Columns have priorities: each table keeps its essential columns (a
  member's name, address and state; an endpoint's container, network, IP and
  rates; an event's age, kind and text) and adds the others while they fit.
  Rates are abbreviated (``9.8M`` bit/s) in narrow screens.
* Rows fold: each section first gets a few rows, then the spare lines go to
  endpoints, members, events and networks in that order; a cut section ends
  with ``… N more``.  Unhealthy members are listed first, so they are the
  ones kept.

Ctrl-C exits cleanly; ``--once`` prints one frame and exits (for scripts).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from meshd import _humanize as hz
from meshd.api import MsgType

Poll = Callable[[], dict[str, Any]]

#: from this width on, two columns of sections
WIDE = 160
_GAP = "  "
_STATE_STYLE = {"alive": "green", "suspect": "yellow", "failed": "bold red", "left": "dim", "up": "green",
                "pending": "yellow", "stopped": "dim", "FAILED": "bold red"}
_KIND_STYLE = {"error": "red", "fail": "red", "mtu": "red", "suspect": "yellow", "leave": "dim"}


@dataclass(frozen=True)
class Column:
    """A table column: ``priority`` 0 is always shown; higher numbers are dropped first.
    ``flex`` columns take the width left over (and are cut with an ellipsis)."""

    header: str
    cell: Callable[[dict[str, Any]], Any]
    priority: int = 0
    flex: bool = False
    max_width: int = 40


def fit_columns(columns: Sequence[Column], rows: Sequence[dict[str, Any]], width: int) -> list[tuple[Column, int]]:
    """The columns that fit in ``width`` (by priority, in their order) with each one's width."""
    natural = {id(c): min(c.max_width, max([len(c.header)] + [len(_plain(c.cell(r))) for r in rows]))
               for c in columns}
    chosen = [c for c in columns if c.priority == 0]

    def need(cols: list[Column]) -> int:
        return sum(natural[id(c)] if not c.flex else len(c.header) + 6 for c in cols) + len(_GAP) * (len(cols) - 1)

    for c in sorted((c for c in columns if c.priority), key=lambda c: c.priority):
        if need(chosen + [c]) <= width:
            chosen.append(c)
    chosen = [c for c in columns if c in chosen]
    widths = [natural[id(c)] for c in chosen]
    spare = width - sum(widths) - len(_GAP) * (len(chosen) - 1)
    flex = [i for i, c in enumerate(chosen) if c.flex]
    if flex:  # the flex column takes what is left (at least its header)
        i = flex[0]
        widths[i] = max(len(chosen[i].header), widths[i] + spare)
    elif spare < 0:  # essential columns too wide: cut the widest
        i = widths.index(max(widths))
        widths[i] = max(3, widths[i] + spare)
    return list(zip(chosen, widths, strict=True))


def _plain(value: Any) -> str:
    return value.plain if isinstance(value, Text) else ("" if value is None else str(value))


def _cell(value: Any, width: int, style: str = "") -> Text:
    text = value.copy() if isinstance(value, Text) else Text(_plain(value), style=style)
    text.truncate(width, overflow="ellipsis", pad=True)
    return text


def table_lines(columns: Sequence[Column], rows: Sequence[dict[str, Any]], width: int, limit: int,
                more: str = "more") -> list[Text]:
    """Header plus at most ``limit`` lines of rows (the last one ``… N more`` when cut)."""
    fitted = fit_columns(columns, rows, width)
    lines = [Text(_GAP.join(c.header.ljust(w)[:w] for c, w in fitted).rstrip(), style="bold")]
    shown = rows if len(rows) <= limit else rows[:max(0, limit - 1)]
    for row in shown:
        line = Text(_GAP).join(_cell(c.cell(row), w) for c, w in fitted)
        line.rstrip()
        lines.append(line)
    if len(shown) < len(rows):
        lines.append(Text(f"… {len(rows) - len(shown)} {more}", style="dim"))
    return lines


def _title(text: str, width: int, extra: str = "") -> Text:
    head = Text.assemble(("── ", "dim"), (text, "bold cyan"), (f"  {extra}" if extra else "", ""), " ")
    head.append("─" * max(0, width - len(head.plain)), style="dim")
    head.truncate(width)
    return head


# --- the sections ---------------------------------------------------------------------


@dataclass
class Section:
    """A titled table; ``rows`` are maps the columns read."""

    title: str
    columns: Sequence[Column]
    rows: list[dict[str, Any]]
    minimum: int          # rows it gets before any spare line is handed out
    extra: str = ""       # shown after the title
    empty: str = "none"

    def lines(self, width: int, limit: int) -> list[Text]:
        if self.rows and not limit:  # no room at all: the title says what is hidden
            return [_title(self.title, width, f"{self.extra} (no room: enlarge the window)")]
        out = [_title(self.title, width, self.extra)]
        if not self.rows:
            return out + [Text(f"  {self.empty}", style="dim")]
        return out + table_lines(self.columns, self.rows, width, limit)

    def height(self, limit: int) -> int:
        if self.rows and not limit:
            return 1
        return 2 if not self.rows else 2 + min(limit, len(self.rows))


def _styled(value: Any) -> Text:
    return Text(str(value), style=_STATE_STYLE.get(str(value), ""))


def _member_section(status: dict[str, Any]) -> Section:
    raft = status.get("raft", {})
    roles = {v: "voter" for v in raft.get("voters", [])} | {n: "learner" for n in raft.get("learners", [])}
    if raft.get("leader"):
        roles[raft["leader"]] = "leader"
    lags = {f.get("id"): f.get("lag") for f in raft.get("followers", [])}
    order = {"failed": 0, "suspect": 1, "alive": 2, "left": 3}
    members = sorted(status.get("members", []), key=lambda m: (order.get(m.get("state"), 0), str(m.get("name"))))
    rows = [{**m, "raft": roles.get(m.get("name"), "-"), "lag": lags.get(m.get("name"), "")} for m in members]
    alive = sum(m.get("state") == "alive" for m in members)
    return Section("Members", [
        Column("NAME", lambda r: r.get("name"), max_width=24),
        Column("ADDRESS", lambda r: r.get("address")),
        Column("STATE", lambda r: _styled(r.get("state"))),
        Column("RAFT", lambda r: r.get("raft"), priority=1),
        Column("LAG", lambda r: r.get("lag"), priority=3),
        Column("VERSION", lambda r: r.get("version"), priority=4),
        Column("INC", lambda r: r.get("incarnation"), priority=5),
    ], rows, minimum=3, extra=f"{alive}/{len(members)} alive")


def _endpoint_section(status: dict[str, Any], compact: bool) -> Section:
    failed = {(a.get("container_id"), a.get("network")): a for a in status.get("attach", []) if a.get("error")}

    def state(e: dict[str, Any]) -> str:
        if (e.get("endpoint_id"), e.get("network")) in failed:
            return "FAILED"
        if not e.get("running", True):
            return "stopped"
        return ("up" if e["up"] else "pending") if "up" in e else "running"

    unit = " bit/s" if compact else ""  # compact cells (9.8M) say their unit in the header
    return Section(f"Endpoints on {status.get('host', 'this host')}", [
        Column("CONTAINER", lambda r: hz.container_label(r), max_width=20),
        Column("NETWORK", lambda r: r.get("network"), max_width=16),
        Column("IP", lambda r: r.get("ip")),
        Column("RX" + unit, lambda r: hz.rate(r.get("rx_bps"), compact=compact) or "-"),
        Column("TX" + unit, lambda r: hz.rate(r.get("tx_bps"), compact=compact) or "-"),
        Column("STATE", lambda r: _styled(state(r)), priority=1),
        Column("LIMIT", lambda r: hz.kbit(r.get("rate_kbit")), priority=2),
        Column("MAC", lambda r: r.get("mac"), priority=3),
        Column("VNI", lambda r: r.get("vni"), priority=4),
    ], list(status.get("endpoints", [])), minimum=4, extra=str(len(status.get("endpoints", []))))


def _network_section(status: dict[str, Any]) -> Section:
    tunnels = {t.get("vni"): t for t in status.get("tunnels", [])}
    rows = [{**n, "peers": len(tunnels.get(n.get("vni"), {}).get("peers", [])) if n.get("vni") in tunnels else "-",
             "fdb": tunnels.get(n.get("vni"), {}).get("fdb_entries", "-")} for n in status.get("networks", [])]
    return Section("Networks", [
        Column("NAME", lambda r: r.get("name"), max_width=20),
        Column("SUBNET", lambda r: r.get("subnet")),
        Column("VNI", lambda r: r.get("vni"), priority=1),
        Column("USED", lambda r: r.get("used"), priority=1),
        Column("FREE", lambda r: r.get("free"), priority=2),
        Column("TENANT", lambda r: r.get("tenant"), priority=2, max_width=16),
        Column("PEERS", lambda r: r.get("peers"), priority=3),
        Column("FDB", lambda r: r.get("fdb"), priority=4),
    ], rows, minimum=2, extra=str(len(rows)))


def _event_section(status: dict[str, Any], now: float, wide: bool) -> Section:
    rows = list(reversed(status.get("events", [])))  # newest first
    columns = [Column("AGE", lambda r: hz.duration(now - r["time"]) if r.get("time") else "?"),
               Column("KIND", lambda r: Text(str(r.get("kind", "")), style=_KIND_STYLE.get(str(r.get("kind")), "")),
                      max_width=10),
               Column("EVENT", lambda r: r.get("text"), flex=True)]
    if wide:
        columns.insert(1, Column("TIME", lambda r: time.strftime("%H:%M:%S", time.localtime(r.get("time", 0)))))
    return Section("Recent events", columns, rows, minimum=3, extra="newest first")


# --- the screen -----------------------------------------------------------------------


def _summary(status: dict[str, Any], note: str) -> list[tuple[str, str]]:
    """The health summary as (text, style) pieces."""
    raft, rec = status.get("raft", {}), status.get("reconcile", {})
    members = status.get("members", [])
    pieces: list[tuple[str, str]] = []
    if raft:
        if raft.get("leader"):
            leader = "" if raft["leader"] == status.get("host") else f", leader {raft['leader']}"
            pieces.append((f"raft {raft.get('role', '?')}{leader}, term {raft.get('term', '?')}, "
                           f"commit {raft.get('commit_index', '?')}", ""))
        else:
            pieces.append((f"raft NO LEADER (term {raft.get('term', '?')})", "bold red"))
    bad = [m for m in members if m.get("state") in ("suspect", "failed")]
    alive = sum(m.get("state") == "alive" for m in members)
    pieces.append((f"members {alive}/{len(members)} alive", "yellow" if bad else "green"))
    if rec.get("last_errors"):
        pieces.append((f"reconcile FAILING ({len(rec['last_errors'])} errors)", "bold red"))
    elif rec:
        pieces.append((f"reconcile ok ({rec.get('last_pass_ms', 0):.0f} ms)", "green"))
    if rec.get("mtu_problems"):
        hosts = sorted({p.get("host", "?") for p in rec["mtu_problems"]})
        pieces.append((f"MTU too large for {', '.join(hosts)} (meshd status)", "bold red"))
    stuck = sum(1 for a in status.get("attach", []) if a.get("error"))
    if stuck:
        pieces.append((f"{stuck} without network (meshd why)", "yellow"))
    if note:
        pieces.append((note, "bold red"))
    return pieces


def _wrap(pieces: list[tuple[str, str]], width: int, sep: str = " · ") -> list[Text]:
    """Pieces on as few lines as fit; a piece is never split (only cut when alone and too long)."""
    lines: list[Text] = []
    line = Text()
    for text, style in pieces:
        if line.plain and len(line.plain) + len(sep) + len(text) > width:
            lines.append(line)
            line = Text()
        if line.plain:
            line.append(sep, style="dim")
        line.append(text, style=style)
    lines.append(line)
    for ln in lines:
        ln.truncate(width, overflow="ellipsis")
    return lines


def _allocate(sections: list[Section], height: int, order: Sequence[int]) -> list[int]:
    """Rows per section: first each one's minimum, then the spare lines in ``order`` (most
    important first); too small even for the minimums, the least important shrink first."""
    limits = [min(s.minimum, len(s.rows)) for s in sections]

    def spare() -> int:
        return height - sum(s.height(limit) for s, limit in zip(sections, limits, strict=True))

    for i in reversed(order):
        while spare() < 0 and limits[i]:
            limits[i] -= 1
    left = spare()
    for i in order:
        extra = min(left, len(sections[i].rows) - limits[i])
        if extra > 0:
            limits[i] += extra
            left -= extra
    return limits


def _column(sections: list[Section], width: int, height: int, order: Sequence[int]) -> list[Text]:
    limits = _allocate(sections, height, order)
    out: list[Text] = []
    for section, limit in zip(sections, limits, strict=True):
        out += section.lines(width, limit)
    return out[:height]


def render(status: dict[str, Any], note: str = "", *, width: int = 80, height: int = 24,
           now: float | None = None) -> Group:
    """The whole screen for one status map: at most ``height`` lines of at most ``width`` cells."""
    now = time.time() if now is None else now
    head = Text.assemble(("meshd top", "bold cyan"), f"  {status.get('host', '?')} {status.get('advertise', '')}  "
                         f"v{status.get('version', '?')}  up {hz.duration(status.get('uptime_s', 0))}  "
                         + time.strftime("%H:%M:%S", time.localtime(now)))
    head.truncate(width, overflow="ellipsis")
    lines = [head, *_wrap(_summary(status, note), width)]
    body = height - len(lines)
    wide = width >= WIDE
    members, networks = _member_section(status), _network_section(status)
    endpoints, events = _endpoint_section(status, compact=not wide), _event_section(status, now, wide)
    if wide:
        half = (width - 3) // 2
        left = _column([members, networks], half, body, order=(0, 1))
        right = _column([endpoints, events], width - half - 3, body, order=(0, 1))
        for i in range(max(len(left), len(right))):
            a = left[i].copy() if i < len(left) else Text()
            a.truncate(half, pad=True)
            lines.append(Text.assemble(a, (" │ ", "dim"), right[i] if i < len(right) else Text()))
    else:
        lines += _column([members, endpoints, networks, events], width, body, order=(1, 0, 3, 2))
    for line in lines:  # a line longer than the screen would wrap onto the next one
        line.no_wrap = True
        line.truncate(width, overflow="ellipsis")
    return Group(*lines[:height])


def run_top(poll: Poll, *, interval_s: float = 1.0, once: bool = False, console: Console | None = None) -> int:
    """Poll and draw until Ctrl-C (or one frame with ``once``)."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # a log or a pipe: room for every column
            console = Console(width=WIDE, height=40)
    status: dict[str, Any] = {}
    last_ok = 0.0

    def refresh() -> Group:
        nonlocal status, last_ok
        try:
            status, last_ok = poll(), time.monotonic()
            note = ""
        except (TimeoutError, OSError) as exc:
            age = "never" if not last_ok else f"{time.monotonic() - last_ok:.0f}s ago"
            note = f"agent not answering (last update {age}): {exc}"
        return render(status, note, width=console.width, height=console.height)

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
