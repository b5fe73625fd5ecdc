"""The ``meshd`` command line.

Every subcommand prints one line per error with a hint and exits non-zero,
whatever goes wrong (an unexpected exception too: it is a bug, reported in
one line); ``--debug`` shows the traceback instead.  Exit codes: 0 ok, 1 the
operation failed, 2 the command line was wrong, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
from collections.abc import Callable
from pathlib import Path

from meshd import __version__
from meshd.cli_agent import add_agent_commands
from meshd.cli_errors import CliError
from meshd.cli_verbs import add_verbs
from meshd.config import DEFAULT_CONFIG_PATH, ConfigError, load

EPILOG = """\
First host:   meshd keygen --out /etc/meshd/secret   (copy the file to every host)
Check config: meshd config check /etc/meshd/meshd.toml
Show config:  meshd config show --profile local --set gossip.probe_interval_s=0.5
On a host with a running agent:
              meshd status ; meshd members ; meshd top
              meshd network create blue 10.1.0.0/24 ; meshd network ls ; meshd network inspect blue
              meshd endpoint connect CONTAINER blue --rate-kbit 10000 ; meshd endpoint inspect CONTAINER
              meshd why CONTAINER        (a container without its network: which step failed)
              meshd log-level debug      (until the agent restarts)
Docs: docs/operators-guide.md in the meshd source tree.
"""


def _cmd_version(args: argparse.Namespace) -> int:
    import msgpack
    import trio
    import zmq

    print(f"meshd {__version__}")
    print(f"python {platform.python_version()}, trio {trio.__version__}, pyzmq {zmq.__version__} "
          f"(libzmq {zmq.zmq_version()}, CURVE {'yes' if zmq.has('curve') else 'NO'}), "
          f"msgpack {'.'.join(map(str, msgpack.version))}")
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    from meshd import transport as t

    if args.client:
        return _keygen_client(args.client, Path(args.dir), args.force, Path(args.secret_file))
    text = t.format_secret(t.new_secret())
    if args.out == "-":
        print(text)
        return 0
    try:
        t.write_private(args.out, text, force=args.force)
    except FileExistsError:
        raise CliError(f"{args.out} already exists",
                       "keep it (every host needs the same secret) or pass --force to replace it") from None
    print(f"wrote cluster secret to {args.out} (mode 0600); copy this same file to every host")
    return 0


def _keygen_client(name: str, directory: Path, force: bool, secret_file: Path) -> int:
    from meshd import transport as t

    if not name.replace("-", "").replace("_", "").isalnum():
        raise CliError(f"client name {name!r} must be letters, digits, '-' or '_'")
    try:
        api_public = t.ClusterKeys.from_secret(t.read_secret(secret_file)).api.public
    except t.SecretError as exc:
        raise CliError(str(exc), "a client key embeds the API's public key: run this on a member, "
                       "or pass --secret-file") from None
    secret_text, public_text = t.format_client_key(name, t.KeyPair.generate(), api_public)
    secret_path, public_path = directory / f"{name}.key", directory / f"{name}.pub"
    try:
        t.write_private(secret_path, secret_text, force=force)
        t.write_private(public_path, public_text, force=force)
    except FileExistsError as exc:
        raise CliError(f"{exc.filename} already exists", "pass --force to replace this client's keys") from None
    print(f"wrote {secret_path} (give it to the scheduler client) and {public_path} "
          f"(copy it into api.clients_dir on every host)")
    return 0


def _load_config(args: argparse.Namespace):
    path = getattr(args, "file", None) or getattr(args, "config", None)
    return load(path, profile=args.profile, overrides=args.set or [])


def _cmd_config_check(args: argparse.Namespace) -> int:
    _load_config(args)
    print(f"{args.file}: ok")
    return 0


def _cmd_config_show(args: argparse.Namespace) -> int:
    sys.stdout.write(_load_config(args).to_toml())
    return 0


def _cmd_config_sample(args: argparse.Namespace) -> int:
    from meshd._sample import sample_toml

    sys.stdout.write(sample_toml())
    return 0


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", choices=("lan", "local"), default="lan",
                   help="defaults to start from: lan (production) or local (fast, for labs); default lan")
    p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE",
                   help="override one setting, e.g. --set gossip.probe_interval_s=0.5 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshd",
        description="meshd: peer-to-peer container networking (SWIM gossip, Raft, VXLAN).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("--version", action="version", version=f"meshd {__version__}",
                        help="print meshd's version (`meshd version` adds its libraries')")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("version", help="print meshd's version and its libraries'")
    p.set_defaults(func=_cmd_version)

    p = sub.add_parser(
        "keygen", help="make the cluster secret (or a scheduler client key pair)",
        description="Make the cluster secret: 32 random bytes from which every host derives its CURVE "
                    "keys. Every host of one cluster needs the same file. With --client NAME, make a "
                    "key pair for a scheduler client instead.")
    p.add_argument("--out", default="/etc/meshd/secret",
                   help="where to write the secret ('-' prints it); default /etc/meshd/secret")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.add_argument("--client", metavar="NAME", help="make scheduler client keys NAME.key and NAME.pub")
    p.add_argument("--dir", default=".", help="directory for --client keys; default the current one")
    p.add_argument("--secret-file", default="/etc/meshd/secret",
                   help="cluster secret, read by --client to embed the API's public key; "
                        "default /etc/meshd/secret")
    p.set_defaults(func=_cmd_keygen)

    p = sub.add_parser("config", help="check or show the configuration")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    c = csub.add_parser("check", help="validate a TOML configuration file",
                        description="Load FILE over the profile's defaults, apply --set overrides and "
                                    "report every invalid setting with its fix.")
    c.add_argument("file", metavar="FILE")
    _add_config_flags(c)
    c.set_defaults(func=_cmd_config_check)
    c = csub.add_parser("show", help="print the effective configuration as TOML",
                        description="Print profile defaults + file + overrides, every field included.")
    c.add_argument("--config", metavar="FILE",
                   help=f"TOML file to read; default {DEFAULT_CONFIG_PATH} when it exists")
    _add_config_flags(c)
    c.set_defaults(func=_cmd_config_show)
    c = csub.add_parser("sample", help="print a commented sample meshd.toml (every option, its default, its doc)")
    c.set_defaults(func=_cmd_config_sample)
    add_agent_commands(sub)
    add_verbs(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `meshd ... | head`: the reader has all it wanted
        sys.stderr.close()
        return 0
    except Exception as exc:  # every error is one line (plus a hint); --debug shows the traceback
        if args.debug:
            raise
        message, hint, code = describe_error(exc)
        print(f"meshd: error: {message}", file=sys.stderr)
        if hint:
            print(f"hint: {hint}", file=sys.stderr)
        return code


def describe_error(exc: Exception) -> tuple[str, str, int]:
    """(message, hint, exit code) of an exception that ended a command."""
    if isinstance(exc, CliError):
        return str(exc), exc.hint, exc.exit_code
    if isinstance(exc, ConfigError):
        return str(exc), "", 1
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}", "", 1
    if isinstance(exc, (OSError, ValueError)):
        return str(exc), "", 1
    return (f"internal error: {type(exc).__name__}: {exc}",
            "this is a meshd bug: report it with the traceback (`meshd agent` logs it; any other command: "
            "run it again with --debug)", 1)


if __name__ == "__main__":
    sys.exit(main())
