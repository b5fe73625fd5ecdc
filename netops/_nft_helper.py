"""The helper process of ``netops._nft.run`` (see its module doc): runs libnftables for its
parent, whose descriptors may be past FD_SETSIZE, one request at a time.

Reads JSON lines ``{"script", "netns", "json"}`` on stdin and answers each with one JSON line
on stdout: ``{"output": text}`` or ``{"error": [op, obj, errno, hint]}`` (a NetopsError's
fields). Exits when stdin closes (its parent exited). SIGINT and SIGTERM are ignored: a Ctrl-C
meant for the parent's process group, or systemd's SIGTERM to the whole service, must not take
libnftables away from the parent while it shuts down.
"""

from __future__ import annotations

import json
import signal
import sys

from netops._errors import NetopsError
from netops._nft import run_in


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        request = json.loads(line)
        try:
            answer: dict[str, object] = {"output": run_in(request["script"], request["netns"], request["json"])}
        except NetopsError as exc:
            answer = {"error": [exc.op, exc.obj, exc.errno, exc.hint]}
        except OSError as exc:  # the netns is gone (setns failed)
            answer = {"error": ["enter netns", request["netns"], exc.errno or 0, str(exc)]}
        out.write(json.dumps(answer).encode() + b"\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
