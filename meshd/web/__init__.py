"""meshd.web: the live web view every agent serves (docs/web.md).

A read-only HTTP/1.1 server (h11 over trio sockets) for a page of static
HTML, JavaScript and CSS shipped in this package (no build step, no CDN),
its JSON endpoints and a stream of server-sent events.  It reads the cluster
through a :class:`ClusterSource` (the agent's, ``meshd/agent/_web.py``) and
knows nothing of the agent's parts.
"""

from ._hub import EventClient, EventHub, sse
from ._query import AdviseQuery, BadQuery, parse_advise
from ._server import ClusterSource, WebLimits, WebServer, static_files

__all__ = ["AdviseQuery", "BadQuery", "ClusterSource", "EventClient", "EventHub", "WebLimits", "WebServer",
           "parse_advise", "sse", "static_files"]
