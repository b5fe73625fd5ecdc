"""What the CLI prints: plain aligned tables (greppable, like ``docker ps``) and the
human summary of ``meshd status`` (like ``consul members`` / ``calicoctl node status``).

Every function takes the plain maps the agent answers (docs/api.md) and prints
them; a key the agent does not send is simply not shown.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from meshd import _humanize as hz


def console() -> Console:
    """A console that never cuts a column: a terminal's width, or a wide one for pipes."""
    c = Console(highlight=False)
    return c if c.is_terminal else Console(width=250, highlight=False, no_color=True)


def emit(*renderables: Any) -> None:
    """Print ``renderables``; into a pipe or file as plain text without trailing blanks."""
    out = console()
    if out.is_terminal:
        for r in renderables:
            out.print(r)
        return
    with out.capture() as captured:
        for r in renderables:
            out.print(r)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, indent: int = 0) -> Any:
    """Columns without borders, headers in capitals (none when all are empty), ``indent`` spaces
    from the left."""
    t = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold",
              show_header=any(headers))
    for h in headers:
        t.add_column(h.upper(), no_wrap=True, overflow="fold")
    for row in rows:
        t.add_row(*(c if isinstance(c, Text) else Text("" if c is None else str(c)) for c in row))
    return Padding(t, (0, 0, 0, indent)) if indent else t


def key_values(rows: Iterable[tuple[str, str]]) -> Table:
    """``Key   value`` lines; long values wrap under themselves."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column()
    for key, value in rows:
        grid.add_row(key, value)
    return grid


def print_map(result: dict[str, Any]) -> None:
    width = max((len(k) for k in result), default=0)
    for key, value in result.items():
        print(f"{key:<{width}}  {cell(value)}")


def cell(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "" if value is None else str(value)


# --- lists -----------------------------------------------------------------------------


def _endpoint_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    named = any(r.get("container") or r.get("container_name") for r in rows)
    states = any("state" in r or "running" in r for r in rows)  # when the agent reports them
    stale = any(r.get("stale") for r in rows)
    headers = ["endpoint", *(["name"] if named else []), "network", "host", "ip", "mac", "rate limit",
               *(["state"] if states else []), *(["stale"] if stale else [])]
    out = []
    for r in rows:
        qos = r.get("qos") or {}
        out.append([hz.short_id(r.get("endpoint_id")),
                    *([r.get("container") or r.get("container_name") or ""] if named else []),
                    r.get("network"), r.get("host"), r.get("ip"), r.get("mac"), hz.kbit(qos.get("rate_kbit")),
                    *([r.get("state") or endpoint_state(r)] if states else []),
                    *(["stale" if r.get("stale") else ""] if stale else [])])
    return headers, out


def _network_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    headers = ["name", "tenant", "subnet", "gateway", "vni", "mtu", "used", "free", "hosts"]
    return headers, [[r.get("name"), r.get("tenant"), r.get("subnet"), r.get("gateway"), r.get("vni"),
                      r.get("mtu"), r.get("used"), r.get("free"), ",".join(r.get("hosts") or []) or "-"]
                     for r in rows]


def _policy_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    return (["id", "kind", "network", "peer"],
            [[r.get("policy_id"), r.get("kind"), r.get("network"), r.get("peer") or "-"] for r in rows])


_ROWS = {"endpoints": _endpoint_rows, "networks": _network_rows, "policies": _policy_rows}


def rows_table(rows: list[dict[str, Any]], title: str) -> Any:
    """The table of a list result (``networks``, ``endpoints``, ``policies``), or ``no <title>``."""
    if not rows:
        return Text(f"no {title}")
    if title in _ROWS:
        headers, cells = _ROWS[title](rows)
    else:
        headers = list(rows[0])
        cells = [[cell(r.get(h)) for h in headers] for r in rows]
    return table(headers, cells)


def print_rows(rows: list[dict[str, Any]], title: str) -> None:
    emit(rows_table(rows, title))


def raft_roles(raft: dict[str, Any]) -> dict[str, str]:
    """``{member: leader/voter/learner}`` from the status map's ``raft``."""
    roles = {v: "voter" for v in raft.get("voters", [])}
    roles.update({n: "learner" for n in raft.get("learners", [])})
    if raft.get("leader"):
        roles[raft["leader"]] = "leader"
    return roles


_STATE_STYLE = {"alive": "green", "suspect": "yellow", "failed": "red", "left": "dim"}


MEMBER_HEADERS = ["name", "address", "state", "raft", "underlay mtu", "kernel lacks", "version"]


def member_rows(members: list[dict[str, Any]], raft: dict[str, Any]) -> list[list[Any]]:
    """Rows under :data:`MEMBER_HEADERS`; "kernel lacks" names the link kinds a member's kernel
    cannot create ("?": an agent too old to say)."""
    roles = raft_roles(raft)
    return [[m.get("name"), m.get("address"),
             Text(str(m.get("state")), style=_STATE_STYLE.get(m.get("state") or "", "")),
             roles.get(m.get("name") or "", "-"), m.get("underlay_mtu") or "-",
             "?" if m.get("dataplane_missing") is None else ", ".join(m["dataplane_missing"]) or "-",
             m.get("version", "")] for m in members]


def print_members(members: list[dict[str, Any]], raft: dict[str, Any]) -> None:
    emit(table(MEMBER_HEADERS, member_rows(members, raft)))


# --- meshd status ----------------------------------------------------------------------


def raft_line(raft: dict[str, Any]) -> str:
    if not raft:
        return "not started"
    role, term = raft.get("role", "?"), raft.get("term", "?")
    if not raft.get("leader"):
        return (f"NO LEADER (this host: {role}, term {term}): writes are refused until a majority of the "
                f"voters ({', '.join(raft.get('voters', [])) or 'none known'}) elect one")
    lagging = [f"{f['id']} {f['lag']} behind" for f in raft.get("followers", []) if f.get("lag")]
    lagging += [f"{f['id']} not answering" for f in raft.get("followers", []) if f.get("responsive") is False]
    adopted = [f["id"] for f in raft.get("followers", []) if f.get("adopted")]
    if adopted:
        lagging.append(f"{' '.join(adopted)} fed by the leader (their relay is not answering)")
    return (f"{role}, term {term}, leader {raft['leader']}, commit {raft.get('commit_index', '?')} "
            f"(applied {raft.get('applied_index', '?')}); voters {' '.join(raft.get('voters', [])) or '-'}"
            + (f"; learners {' '.join(raft['learners'])}" if raft.get("learners") else "")
            + (f"; {', '.join(lagging)}" if lagging else ""))


def dataplane_line(dp: dict[str, Any]) -> str:
    if not dp:
        return "not probed"
    return (f"this kernel creates {', '.join(dp.get('link_kinds') or []) or 'no'} links"
            + (f"; it has no {', '.join(dp['missing'])}" if dp.get("missing") else ""))


def reconcile_line(rec: dict[str, Any]) -> str:
    if not rec:
        return "not started"
    errors = rec.get("last_errors") or []
    counts = (f"{rec.get('passes', 0)} passes ({rec.get('passes_skipped', 0)} skipped), last "
              f"{rec.get('last_pass_ms', 0):.1f} ms, {rec.get('errors_total', 0)} errors since start")
    mtu = "".join(f"; MTU PROBLEM: {p.get('text', p)}" for p in rec.get("mtu_problems") or [])
    if errors:
        return f"FAILING: {len(errors)} error(s) in the last pass, first: {errors[0]} ({counts}{mtu})"
    return f"ok: {counts}{mtu}"


def endpoint_state(ep: dict[str, Any]) -> str:
    if not ep.get("running", True):
        return "stopped"
    if "up" in ep:
        return "up" if ep["up"] else "pending"
    return "running"


def print_status(status: dict[str, Any], *, now: float | None = None, events: int = 10) -> None:
    """The human summary of a QUERY_STATUS map."""
    emit(*status_summary(status, time.time() if now is None else now, events))


def status_summary(status: dict[str, Any], now: float, events: int) -> list[Any]:
    members = status.get("members", [])
    alive = sum(m.get("state") == "alive" for m in members)
    out: list[Any] = [
        Text.assemble((status.get("host", "?"), "bold"), f"  {status.get('advertise', '')}  meshd "
                      f"{status.get('version', '?')}  up {hz.duration(status.get('uptime_s'))}"
                      + (f"  log level {status['log_level']}" if status.get("log_level") else "")),
        key_values([("Raft", raft_line(status.get("raft", {}))),
                    ("Reconcile", reconcile_line(status.get("reconcile", {}))),
                    ("Members", f"{alive} of {len(members)} alive"),
                    ("Data plane", dataplane_line(status.get("dataplane", {})))])]
    sections = [
        ("Members", MEMBER_HEADERS, member_rows(members, status.get("raft", {}))),
        ("Networks", ["name", "tenant", "subnet", "vni", "used", "free"],
         [[n.get("name"), n.get("tenant"), n.get("subnet"), n.get("vni"), n.get("used"), n.get("free")]
          for n in status.get("networks", [])]),
        (f"Endpoints on {status.get('host', 'this host')}",
         ["container", "network", "ip", "state", "rate limit", "rx", "tx"],
         [[hz.container_label(e), e.get("network"), e.get("ip"), endpoint_state(e), hz.kbit(e.get("rate_kbit")),
           hz.rate(e.get("rx_bps")) or "-", hz.rate(e.get("tx_bps")) or "-"] for e in status.get("endpoints", [])]),
        ("Recent events, newest first", ["when", "kind", "event"],
         [[hz.ago(e.get("time"), now), e.get("kind"), e.get("text")]
          for e in list(reversed(status.get("events", [])))[:events]]),
    ]
    for title, headers, rows in sections:
        out.append(Text(f"\n{title}", style="bold"))
        out.append(table(headers, rows, indent=2) if rows else Text("  none", style="dim"))
    stuck = [a for a in status.get("attach", []) if a.get("error")]
    if stuck:
        out.append(Text(f"\n{len(stuck)} container(s) without their network here: `meshd why CONTAINER` "
                        f"says why ({', '.join(sorted({hz.container_label(a) for a in stuck}))})", style="yellow"))
    return out
