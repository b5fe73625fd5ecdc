"""The multi-host lab: meshd hosts as network namespaces on one underlay bridge.

Public API (used by tests and the demo)::

    from tools.lab import Lab, LabHost, Container, LabError

See docs/lab.md. CLI: `python -m tools.lab --help`.
"""

from tools.lab._dhcp import DhcpLease, DhcpServer
from tools.lab._docker import IMAGE, LABEL_HOST, LABEL_PREFIX, Container, docker_available, ensure_image
from tools.lab._docker import client as docker_client
from tools.lab._lab import DEFAULT_PREFIX, DownReport, HostStatus, Lab, LabStatus, lab_prefixes, unique_prefix
from tools.lab._net import LabHost
from tools.lab._sh import LabError, run

__all__ = [
    "DEFAULT_PREFIX",
    "IMAGE",
    "LABEL_HOST",
    "LABEL_PREFIX",
    "Container",
    "DhcpLease",
    "DhcpServer",
    "DownReport",
    "HostStatus",
    "Lab",
    "LabError",
    "LabHost",
    "LabStatus",
    "docker_available",
    "docker_client",
    "ensure_image",
    "lab_prefixes",
    "run",
    "unique_prefix",
]
