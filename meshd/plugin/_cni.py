"""``meshd-cni``: a CNI plugin (spec 1.1) that asks this host's meshd agent for the container's interface.

The runtime (podman, containerd, CRI-O, the kubelet) runs it with
``CNI_COMMAND`` and the network configuration on stdin; it talks to the
local agent over its root-only control socket (``runDir``, default
``/run/meshd``), so an attachment is the same API request a scheduler sends
(``ENDPOINT_CONNECT`` with the container's ``netns`` and ``ifname``): the agent
allocates the address from the replicated pool, builds the interface in the
netns and answers once it is up.

Configuration (one plugin of a conflist; docs/integrations.md)::

    {"type": "meshd", "network": "blue", "tenant": "a", "subnet": "10.1.0.0/24",
     "mode": "vxlan", "bandwidth_kbit": 0, "runDir": "/run/meshd", "dataDir": "/var/lib/cni/meshd"}

``network`` defaults to the conflist's ``name``; with ``subnet`` the network
is created when missing (an existing one must agree), without it it must exist.

Commands: ``ADD`` (the result, chained after a ``prevResult``), ``DEL``
(idempotent: a missing attachment, netns or network is no error), ``CHECK``
(the attachment exists and its interface is up), ``GC`` (releases this
network's attachments on this host that are not in
``cni.dev/valid-attachments``), ``STATUS`` (error 50 while the agent has no
Raft leader), ``VERSION``.  Attachments are recorded in ``dataDir`` so ``GC``
knows which are its own.  Errors are the spec's JSON on stdout with a
non-zero exit status.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from meshd.api import MsgType
from meshd.api.client import AgentNotRunning, ApiRequestError, SchedulerClient

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
#: the spec's error codes used here
E_VERSION, E_UNSUPPORTED_FIELD, E_UNKNOWN_CONTAINER, E_ENV, E_IO, E_DECODE, E_CONFIG = 1, 2, 3, 4, 5, 6, 7
E_TRY_LATER, E_NOT_AVAILABLE = 11, 50
#: meshd's own codes (the spec leaves 100 and up to plugins): the agent refused the request
E_REFUSED = 100
#: the API's codes this plugin tells apart (docs/api.md): state errors are 1000 + the state's code
_UNKNOWN_NETWORK, _UNKNOWN_ENDPOINT = 1000 + 12, 1000 + 21
_API_UNAVAILABLE = 12
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


class CniError(Exception):
    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details


def main(argv: list[str] | None = None, *, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout,
         environ: Mapping[str, str] = os.environ) -> int:
    """Run one CNI command; the exit status is 0 on success."""
    version = "1.1.0"
    try:
        command = environ.get("CNI_COMMAND", "")
        if command == "VERSION" or (not command and argv and argv[0] in ("--version", "version")):
            json.dump({"cniVersion": "1.1.0", "supportedVersions": list(SUPPORTED_VERSIONS)}, stdout)
            return 0
        if not command:
            raise CniError(E_ENV, "CNI_COMMAND is not set: meshd-cni is run by a container runtime as a CNI "
                                  "plugin (type \"meshd\"); see docs/integrations.md")
        try:
            conf = json.loads(stdin.read() or "{}")
        except ValueError as exc:
            raise CniError(E_DECODE, f"the network configuration on stdin is not JSON: {exc}") from None
        if not isinstance(conf, dict):
            raise CniError(E_DECODE, "the network configuration on stdin must be a JSON object")
        version = str(conf.get("cniVersion", "1.1.0"))
        if version not in SUPPORTED_VERSIONS:
            raise CniError(E_VERSION, f"cniVersion {version} is not supported: use one of "
                                      f"{', '.join(SUPPORTED_VERSIONS)}")
        plugin = Plugin(conf, environ)
        handler = {"ADD": plugin.add, "DEL": plugin.delete, "CHECK": plugin.check, "GC": plugin.gc,
                   "STATUS": plugin.status}.get(command)
        if handler is None:
            raise CniError(E_ENV, f"CNI_COMMAND={command} is unknown: ADD, DEL, CHECK, GC, STATUS or VERSION")
        result = handler()
        if result is not None:
            json.dump(result, stdout)
        return 0
    except CniError as exc:
        json.dump({"cniVersion": version, "code": exc.code, "msg": exc.msg, "details": exc.details}, stdout)
        return 1


class Plugin:
    """One invocation: the configuration, the environment and the agent."""

    def __init__(self, conf: dict[str, Any], environ: Mapping[str, str]) -> None:
        self.conf = conf
        self.env = environ
        self.version = str(conf.get("cniVersion", "1.1.0"))
        self.network = str(conf.get("network") or conf.get("name") or "")
        if not self.network:
            raise CniError(E_CONFIG, "the configuration names no network: set \"network\" (or the conflist's name)")
        self.run_dir = str(conf.get("runDir", "/run/meshd"))
        self.data_dir = Path(str(conf.get("dataDir", "/var/lib/cni/meshd"))) / self.network

    # --- commands ---------------------------------------------------------------------

    def add(self) -> dict[str, Any]:
        cid, netns, ifname = self._env("CNI_CONTAINERID"), self._env("CNI_NETNS"), self._env("CNI_IFNAME")
        with self._client() as api:
            net = self._network(api, create=True)
            fields: dict[str, Any] = {"container_id": cid, "network": self.network, "netns": netns, "ifname": ifname}
            for key in ("bandwidth_kbit", "burst_bytes", "latency_ms"):
                if key in self.conf:
                    fields[key] = self.conf[key]
            ip = _cni_args(self.env).get("IP")
            if ip:
                fields["ip"] = ip.split("/")[0]
            ep = self._call(api, MsgType.ENDPOINT_CONNECT, **fields)
        self._record(cid, ifname, netns)
        return self._result(ep, net, netns, ifname)

    def delete(self) -> None:
        cid, ifname = self._env("CNI_CONTAINERID"), self.env.get("CNI_IFNAME", "eth0")
        with self._client() as api:
            self._disconnect(api, cid)
        self._forget(cid, ifname)

    def check(self) -> None:
        cid = self._env("CNI_CONTAINERID")
        with self._client() as api:
            eps = self._call(api, MsgType.QUERY_ENDPOINTS, network=self.network)["endpoints"]
        mine = [e for e in eps if e["endpoint_id"] == cid]
        if not mine:
            raise CniError(E_UNKNOWN_CONTAINER, f"container {cid[:12]} is not attached to meshd network "
                                                f"{self.network}: run ADD first")
        if not mine[0].get("running"):
            raise CniError(E_REFUSED, f"container {cid[:12]}'s netns is gone or its interface is not built "
                                      f"(`meshd why {cid[:12]}` on this host says why)")

    def gc(self) -> None:
        valid = {(str(a.get("containerID")), str(a.get("ifname")))
                 for a in self.conf.get("cni.dev/valid-attachments") or [] if isinstance(a, dict)}
        stale = [(cid, ifname) for cid, ifname in self._records() if (cid, ifname) not in valid]
        if not stale:
            return
        with self._client() as api:
            for cid, ifname in stale:
                self._disconnect(api, cid)
                self._forget(cid, ifname)

    def status(self) -> None:
        with self._client() as api:
            raft = self._call(api, MsgType.QUERY_STATUS).get("raft", {})
        if not raft.get("leader"):
            raise CniError(E_NOT_AVAILABLE, "the meshd agent has no Raft leader: it cannot allocate addresses now "
                                            "(`meshd status` says why)")

    # --- helpers ----------------------------------------------------------------------

    def _env(self, name: str) -> str:
        value = self.env.get(name, "")
        if not value:
            raise CniError(E_ENV, f"{name} is not set (the runtime must set it for CNI_COMMAND="
                                  f"{self.env.get('CNI_COMMAND')})")
        if name == "CNI_CONTAINERID" and not _ID.fullmatch(value):
            raise CniError(E_ENV, f"CNI_CONTAINERID {value!r} is not a valid container id")
        return value

    def _client(self) -> SchedulerClient:
        try:
            return SchedulerClient.local(self.run_dir, timeout_s=20)
        except AgentNotRunning as exc:
            raise CniError(E_TRY_LATER, str(exc), "start the agent (systemctl start meshd) or set runDir") from None
        except PermissionError as exc:
            raise CniError(E_IO, str(exc)) from None

    def _call(self, api: SchedulerClient, msg_type: MsgType, **fields: Any) -> dict[str, Any]:
        try:
            return api.request(msg_type, **fields)
        except ApiRequestError as exc:
            code = E_TRY_LATER if exc.code == _API_UNAVAILABLE else E_REFUSED
            raise CniError(code, exc.message, f"meshd error {exc.code}") from None
        except TimeoutError as exc:
            raise CniError(E_TRY_LATER, str(exc)) from None

    def _network(self, api: SchedulerClient, *, create: bool) -> dict[str, Any]:
        nets = {n["name"]: n for n in self._call(api, MsgType.QUERY_NETWORKS)["networks"]}
        net = nets.get(self.network)
        subnet = self.conf.get("subnet")
        if net is not None:
            for key in ("tenant", "subnet", "mode", "gateway"):
                if key in self.conf and str(self.conf[key]) != str(net.get(key)):
                    raise CniError(E_CONFIG, f"meshd network {self.network} exists with {key} {net.get(key)}, "
                                             f"not {self.conf[key]}: fix the conflist or use another network name")
            return net
        if not create or not subnet:
            raise CniError(E_CONFIG, f"meshd network {self.network} does not exist: create it (`meshd network "
                                     f"create {self.network} --subnet CIDR`) or give \"subnet\" in the conflist")
        fields = {k: self.conf[k] for k in ("tenant", "subnet", "mode", "gateway", "mtu", "vni") if k in self.conf}
        try:
            self._call(api, MsgType.NETWORK_CREATE, name=self.network, **fields)
        except CniError:
            nets = {n["name"]: n for n in self._call(api, MsgType.QUERY_NETWORKS)["networks"]}
            if self.network not in nets:  # not a race with another host's ADD
                raise
        return self._network(api, create=False)

    def _disconnect(self, api: SchedulerClient, cid: str) -> None:
        try:
            api.request(MsgType.ENDPOINT_DISCONNECT, container_id=cid, network=self.network)
        except ApiRequestError as exc:
            if exc.code in (_UNKNOWN_ENDPOINT, _UNKNOWN_NETWORK):
                return  # DEL is idempotent: nothing attached, or the network is gone
            code = E_TRY_LATER if exc.code == _API_UNAVAILABLE else E_REFUSED
            raise CniError(code, exc.message, f"meshd error {exc.code}") from None
        except TimeoutError as exc:
            raise CniError(E_TRY_LATER, str(exc)) from None

    def _result(self, ep: Mapping[str, Any], net: Mapping[str, Any], netns: str, ifname: str) -> dict[str, Any]:
        prev = self.conf.get("prevResult") or {}
        interfaces = list(prev.get("interfaces") or [])
        ips = list(prev.get("ips") or [])
        routes = list(prev.get("routes") or [])
        interfaces.append({"name": ifname, "mac": ep["mac"], "sandbox": netns})
        ip: dict[str, Any] = {"address": f"{ep['ip']}/{ep['prefix_len']}", "interface": len(interfaces) - 1}
        if ep.get("gateway"):
            ip["gateway"] = ep["gateway"]
            routes.append({"dst": "0.0.0.0/0", "gw": ep["gateway"]})
        if self.version.startswith("0."):
            ip["version"] = "4"
        ips.append(ip)
        out: dict[str, Any] = {"cniVersion": self.version, "interfaces": interfaces, "ips": ips, "routes": routes,
                               "dns": prev.get("dns") or {}}
        ipaddress.IPv4Interface(ip["address"])  # the agent's answer is an address: fail here, not in the runtime
        return out

    def _record(self, cid: str, ifname: str, netns: str) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            (self.data_dir / f"{cid}:{ifname}").write_text(json.dumps({"netns": netns}))
        except OSError as exc:
            raise CniError(E_IO, f"cannot record the attachment in {self.data_dir}: {exc.strerror}") from None

    def _forget(self, cid: str, ifname: str) -> None:
        try:
            (self.data_dir / f"{cid}:{ifname}").unlink()
        except FileNotFoundError:
            return

    def _records(self) -> list[tuple[str, str]]:
        try:
            names = [p.name for p in self.data_dir.iterdir()]
        except FileNotFoundError:
            return []
        # "<container id>:<ifname>": neither may hold a ':' (CNI_CONTAINERID is checked, ifnames cannot)
        return [tuple(n.split(":", 1)) for n in names if ":" in n]  # type: ignore[misc]


def _cni_args(env: Mapping[str, str]) -> dict[str, str]:
    """``CNI_ARGS`` (``K=V;K2=V2``) as a map."""
    out = {}
    for part in env.get("CNI_ARGS", "").split(";"):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def entry() -> None:
    """The ``meshd-cni`` console script."""
    sys.exit(main(sys.argv[1:]))
