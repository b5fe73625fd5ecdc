"""Errors the CLI prints: one line in the CLI's own words, and the fix.

The agent answers in the API's words (docs/api.md): request classes and field
names (``NetworkCreate: field 'vni'``, ``bandwidth_kbit``), 64-hex container
ids and state verbs (``set-qos``).  :func:`explain` turns such an answer into
what the operator typed (``--vni``, ``--rate-kbit``, ``meshd endpoint qos``,
a 12-character id) and adds a hint that says what to do next, never "see the
docs".  The numeric code stays available under ``--debug``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from meshd.api import STATE_ERROR_OFFSET, ApiError
from meshd.state import ErrorCode

#: the hint of every "no agent" error
START_AGENT_HINT = ("start it: `systemctl start meshd`, or `meshd agent --config /etc/meshd/meshd.toml` "
                    "in the foreground; for an agent with another run dir pass --run-dir")


class CliError(Exception):
    """A failure the user can fix: printed as one line plus a hint; exit code 1."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class UsageError(CliError):
    """The command line itself is wrong (a combination argparse cannot check); exit code 2."""

    exit_code = 2


#: API and state field names -> what the CLI calls them
FIELD_WORDS = {
    "bandwidth_kbit": "--rate-kbit", "rate_kbit": "--rate-kbit", "burst_bytes": "--burst-bytes",
    "latency_ms": "--latency-ms", "egress_kbit": "--egress-kbit", "vni": "--vni", "mtu": "--mtu",
    "gateway": "--gateway", "tenant": "--tenant", "mode": "--mode", "options": "--opt", "labels": "--label",
    "ip": "--ip",
    "mac": "--mac", "pid": "--pid", "host": "--host", "peer": "--peer", "policy_id": "--policy-id",
    "external": "--external", "force": "--force", "container_id": "CONTAINER", "network": "NETWORK",
    "name": "NAME", "subnet": "SUBNET", "kind": "KIND", "level": "LEVEL", "addresses": "ADDRESS",
}

_QOS = "|".join(("bandwidth_kbit", "rate_kbit", "burst_bytes", "latency_ms", "egress_kbit"))
_REWRITES: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # "NetworkCreate: field 'vni' must be ..." -> "--vni must be ..."
    (re.compile(r"^[A-Z][A-Za-z]+: "), ""),
    (re.compile(r"field '(\w+)'"), lambda m: FIELD_WORDS.get(m[1], m[1])),
    (re.compile(r"field\(s\) ((?:'\w+'(?:, )?)+)"),
     lambda m: ", ".join(FIELD_WORDS.get(f, f) for f in re.findall(r"'(\w+)'", m[1]))),
    # "rate_kbit=10000" -> "--rate-kbit 10000"; "without burst_bytes" -> "without --burst-bytes"
    # (not inside a label name such as meshd.rate_kbit)
    (re.compile(rf"(?<![\w.-])({_QOS})=(\S+)"), lambda m: f"{FIELD_WORDS[m[1]]} {m[2]}"),
    (re.compile(rf"(?<![\w.-])({_QOS})\b"), lambda m: FIELD_WORDS[m[1]]),
    (re.compile(r"\buse move / set-qos\b"), "use `meshd endpoint move` / `meshd endpoint qos`"),
    (re.compile(r"\bdelete with force\b"), "delete with --force"),
    # a full container id is shown as docker ps shows it
    (re.compile(r"\b([0-9a-f]{12})[0-9a-f]{52}\b"), r"\1"),
)

#: what to do next, per error code (codes whose message already says it have none)
_HINTS: dict[int, str] = {
    ApiError.MISSING_FIELD: "check the command line (`meshd COMMAND --help`)",
    ApiError.WRONG_TYPE: "check the command line (`meshd COMMAND --help`)",
    ApiError.UNKNOWN_FIELD: "this CLI and the agent differ in version: compare `meshd --version` with "
                            "`meshd status` (version)",
    ApiError.UNKNOWN_TYPE: "this CLI is newer than the agent: upgrade the agent, or use a CLI of its version",
    ApiError.UNKNOWN_CONTAINER: "check the name or id with `docker ps -a` on the container's host; a "
                                "container Docker does not know needs --pid",
    ApiError.UNAVAILABLE: "the cluster has no leader or no quorum now: look at `meshd status` (Raft) and "
                          "`meshd members`, then run the command again",
    ApiError.TIMEOUT: "look at `meshd status` (Raft) and `meshd members`, then run the command again",
    ApiError.INTERNAL: "this is a meshd bug: the agent log has the traceback (journalctl -u meshd); "
                       "please report it",
    ApiError.INTERFACE_FAILED: "`meshd why CONTAINER` shows which step failed and its last error",
    STATE_ERROR_OFFSET + ErrorCode.UNKNOWN_NETWORK: "list the networks with `meshd network ls`",
    STATE_ERROR_OFFSET + ErrorCode.DUPLICATE_NETWORK: "see it with `meshd network inspect NAME`",
    STATE_ERROR_OFFSET + ErrorCode.UNKNOWN_ENDPOINT: "list the endpoints with `meshd endpoint ls`",
    STATE_ERROR_OFFSET + ErrorCode.UNKNOWN_POLICY: "list the policies with `meshd policy ls`",
}


def in_cli_words(message: str) -> str:
    """``message`` with API field names, state verbs and full ids in the CLI's words."""
    for pattern, repl in _REWRITES:
        message = pattern.sub(repl, message)
    return message


def explain(verb: str, code: int, message: str) -> CliError:
    """The CLI error for the agent's answer ``(code, message)`` to ``meshd VERB``."""
    hint = _HINTS.get(code, "")
    return CliError(f"{verb}: {in_cli_words(message)}", hint.replace("COMMAND", verb))
