"""meshd.plugin: meshd from the tools people already run.

* :mod:`._docker` — Docker's libnetwork remote network and IPAM driver,
  mapped onto meshd's API (the agent serves it, :mod:`meshd.agent._plugin`);
* :mod:`._http` — its HTTP/1.1 + JSON server on the plugin's unix socket;
* :mod:`._cni` — ``meshd-cni``, a CNI plugin (spec 1.1) that asks the local
  agent over its control socket.

docs/integrations.md describes both from the user's side.
"""

from ._docker import DockerDriver, DriverBook, DriverError, DriverPorts, refusal
from ._http import PluginServer

__all__ = ["DockerDriver", "DriverBook", "DriverError", "DriverPorts", "PluginServer", "refusal"]
