"""``meshd agent``, ``meshd join`` and ``meshd leave``: running and steering the daemon."""

from __future__ import annotations

import argparse
import logging
import sys

import trio

from meshd.api import MsgType
from meshd.api.client import AgentNotRunning, ApiRequestError, SchedulerClient
from meshd.cli_errors import CliError
from meshd.config import DEFAULT_CONFIG_PATH, Config, load

log = logging.getLogger("meshd.agent")


def _config(args: argparse.Namespace) -> Config:
    overrides = list(args.set or [])
    for flag, key in (("name", "agent.name"), ("advertise", "agent.advertise_address"),
                      ("data_dir", "agent.data_dir"), ("run_dir", "agent.run_dir"),
                      ("secret", "agent.secret_file")):
        value = getattr(args, flag, None)
        if value:
            overrides.append(f"{key}={value}")
    return load(args.config, profile=args.profile, overrides=overrides)


def _first_leaf(exc: BaseException) -> BaseException:
    """The first exception that is not a group (trio nests a nursery's group in its parent's)."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def cmd_agent(args: argparse.Namespace, join: list[str] | None = None) -> int:
    """Run the agent in the foreground until SIGTERM/SIGINT."""
    import consensus
    from meshd.agent import Agent, AgentStartError
    from meshd.transport import SecretError, ZapHandlerFailed

    cfg = _config(args)
    logging.getLogger().setLevel(logging.DEBUG if args.debug else getattr(logging, cfg.agent.log_level.upper()))
    agent = Agent(cfg, join=join or args.join or (), router_prefix=args.router_prefix, docker=not args.no_docker)
    try:
        trio.run(agent.run)
    except* (AgentStartError, SecretError, consensus.StorageCorrupt, ZapHandlerFailed) as group:
        raise CliError(str(_first_leaf(group))) from None
    except* KeyboardInterrupt:
        pass  # Ctrl-C in the foreground: the agent already left gracefully on SIGINT
    except* Exception as group:
        # A bug. A daemon's operator has its log, not a second run with --debug: the traceback
        # goes there, and the one line below names the innermost exception, not trio's group.
        leaf = _first_leaf(group)
        logging.getLogger("meshd.agent").critical("agent stopped by an internal error", exc_info=leaf)
        raise leaf from None
    return 0


def cmd_join(args: argparse.Namespace) -> int:
    """Tell the running agent to join through ADDRESS, or start one that does."""
    cfg = _config(args)
    try:
        client = SchedulerClient.local(cfg.agent.run_dir, timeout_s=cfg.agent.join_timeout_s + 10.0)
    except AgentNotRunning:
        print(f"no agent runs on this host: starting one that joins through {', '.join(args.addresses)}",
              file=sys.stderr)
        return cmd_agent(args, join=args.addresses)
    try:
        result = client.request(MsgType.CONTROL_JOIN, addresses=args.addresses)
    except ApiRequestError as exc:
        raise CliError(f"join failed: {exc.message}", "check the address and that this host has the cluster "
                       "secret of the others") from None
    except TimeoutError as exc:
        raise CliError(str(exc), "look at the agent's log (journalctl -u meshd)") from None
    finally:
        client.close()
    print(f"joined: {result.get('members', '?')} members known")
    return 0


def cmd_leave(args: argparse.Namespace) -> int:
    try:
        client = SchedulerClient.local(args.run_dir, timeout_s=15.0)
    except AgentNotRunning as exc:
        raise CliError(f"{exc}: there is nothing to leave", "a stopped agent is no member already; "
                       "the others see it as failed until it leaves or is removed") from None
    try:
        client.request(MsgType.CONTROL_LEAVE)
    except TimeoutError as exc:
        raise CliError(str(exc)) from None
    finally:
        client.close()
    print("left the cluster; the agent stops")
    return 0


def _agent_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help=f"TOML configuration; default {DEFAULT_CONFIG_PATH} if present")
    p.add_argument("--profile", choices=("lan", "local"), default="lan",
                   help="defaults: lan (production timing) or local (fast, for a lab on one machine)")
    p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", help="override a setting (repeatable)")
    p.add_argument("--name", help="member name (agent.name); default the hostname")
    p.add_argument("--advertise", help="address other hosts reach this one at (agent.advertise_address)")
    p.add_argument("--data-dir", help="durable state directory (agent.data_dir)")
    p.add_argument("--run-dir", help="runtime directory with the control socket (agent.run_dir)")
    p.add_argument("--secret", metavar="FILE", help="cluster secret file (agent.secret_file)")
    p.add_argument("--no-docker", action="store_true", help="do not watch Docker (containers given by PID only)")
    p.add_argument("--router-prefix", metavar="PREFIX",
                   help="name prefix of this agent's tenant-router network namespaces (default 'meshd-r-'); give "
                        "each agent its own when several agents share one machine (the lab uses "
                        "'<lab prefix>-r<N>-'), or they would share and tear down each other's routers")


def add_agent_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "agent", help="run the meshd daemon on this host (foreground)",
        description="Run gossip, Raft, the network state, the data plane, the scheduler API (30027-30029), "
                    "the local control socket and metrics. The first host bootstraps a new cluster; others "
                    "use --join (or `meshd join`). SIGTERM leaves the cluster gracefully.")
    _agent_flags(p)
    p.add_argument("--join", action="append", metavar="ADDRESS",
                   help="join through this member (host or host:port; repeatable, any live one suffices)")
    p.set_defaults(func=cmd_agent)
    p = sub.add_parser(
        "join", help="join a cluster through any member",
        description="Ask this host's running agent to join through ADDRESS; when no agent runs, start one in "
                    "the foreground that joins. The host needs the same cluster secret as the others. A join "
                    "keeps asking (jittered backoff up to 5 s) until a member answers or agent.join_timeout_s "
                    "(default 120 s) has passed.")
    p.add_argument("addresses", nargs="+", metavar="ADDRESS", help="a member: host or host:port (gossip port)")
    _agent_flags(p)
    p.set_defaults(func=cmd_join, join=None)
    p = sub.add_parser("leave", help="leave the cluster gracefully and stop this host's agent")
    p.add_argument("--run-dir", default="/run/meshd", help="the agent's run dir (agent.run_dir)")
    p.set_defaults(func=cmd_leave)
