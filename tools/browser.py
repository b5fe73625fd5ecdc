"""Headless Chromium driven over the DevTools protocol on a pipe, for the web view's browser test.

``chromium --remote-debugging-pipe`` reads protocol commands (JSON, each
ended by a NUL byte) on its file descriptor 3 and writes replies and events
on descriptor 4: no port, no websocket, no client library.  A reader thread
splits the replies; :meth:`Page.evaluate` runs JavaScript in the page and
returns its value, :meth:`Page.screenshot` writes a PNG.

    with Browser(prefix=lab.exec_argv("h1")) as browser:   # inside a lab host's netns
        page = browser.open("http://127.0.0.1:9478/")
        page.wait("document.querySelector('#live.on') !== null")
        page.screenshot(Path("cluster.png"))

Chromium runs as root here, so without its sandbox (``--no-sandbox``), and
with its background networking off (it must not try to reach anything).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-extensions", "--disable-domain-reliability", "--no-pings", "--mute-audio",
    "--disable-client-side-phishing-detection", "--hide-scrollbars", "--remote-debugging-pipe",
)


class BrowserError(RuntimeError):
    """Chromium is missing, died, or answered a command with an error."""


def find_chromium() -> str | None:
    """The Chromium executable (apt package ``chromium``), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless Chromium process; a context manager that always ends it."""

    def __init__(self, *, prefix: Sequence[str] = (), width: int = 1400, height: int = 1000) -> None:
        exe = find_chromium()
        if exe is None:
            raise BrowserError("chromium is not installed: apt-get install chromium (tools/setup.sh does)")
        self.width, self.height = width, height
        self._profile = tempfile.mkdtemp(prefix="meshd-chromium-")
        #: Chromium's own messages (stderr), for a failing test to show before :meth:`close` removes them
        self.log_path = Path(self._profile + ".log")
        self._log = self.log_path.open("wb")
        cmd_read, self._cmd_write = os.pipe()
        self._out_read, out_write = os.pipe()

        def fds_3_and_4() -> None:  # in the child, before exec: its pipe ends become fds 3 and 4
            a, b = os.dup(cmd_read), os.dup(out_write)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [*prefix, exe, *FLAGS, f"--user-data-dir={self._profile}", f"--window-size={width},{height}",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
            pass_fds=(3, 4, cmd_read, out_write), preexec_fn=fds_3_and_4)
        os.close(cmd_read)
        os.close(out_write)
        self._ids = itertools.count(1)
        self._replies: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for fd in (self._cmd_write, self._out_read):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log.close()
        self.log_path.unlink(missing_ok=True)
        shutil.rmtree(self._profile, ignore_errors=True)

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._out_read, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for raw in messages:
                msg = json.loads(raw)
                with self._lock:
                    waiter = self._replies.get(msg.get("id", -1))
                if waiter is not None:
                    waiter.put(msg)

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
             timeout_s: float = 30.0) -> dict[str, Any]:
        """One protocol command; its ``result``.

        Raises:
          BrowserError: an error reply, no reply within ``timeout_s``, or Chromium is gone.
        """
        msg_id = next(self._ids)
        waiter: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            self._replies[msg_id] = waiter
        command: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session is not None:
            command["sessionId"] = session
        try:
            os.write(self._cmd_write, json.dumps(command).encode() + b"\0")
            reply = waiter.get(timeout=timeout_s)
        except (OSError, queue.Empty):
            raise BrowserError(f"chromium did not answer {method} within {timeout_s}s"
                               f" (exit code {self.proc.poll()})") from None
        finally:
            with self._lock:
                self._replies.pop(msg_id, None)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def open(self, url: str) -> Page:
        """A new tab showing ``url``."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.call("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                         "deviceScaleFactor": 1, "mobile": False})
        page.call("Page.navigate", {"url": url})
        return page


class Page:
    """One tab, through its flattened protocol session."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def call(self, method: str, params: dict[str, Any] | None = None, timeout_s: float = 30.0) -> dict[str, Any]:
        return self.browser.call(method, params, session=self.session, timeout_s=timeout_s)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited).

        Raises:
          BrowserError: the expression threw.
        """
        reply = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in reply:
            raise BrowserError(f"{expression[:80]!r} threw: {reply['exceptionDetails'].get('text')} "
                               f"{reply['exceptionDetails'].get('exception', {}).get('description', '')}")
        return reply["result"].get("value")

    def wait(self, expression: str, timeout_s: float = 30.0, interval_s: float = 0.02) -> Any:
        """Until ``expression`` is truthy; its value.

        Raises:
          BrowserError: still falsy after ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"still false after {timeout_s}s: {expression}")
            time.sleep(interval_s)

    def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        """A PNG of the page (the whole page's height with ``full_page``)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            height = int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)") or self.browser.height)
            params["clip"] = {"x": 0, "y": 0, "width": self.browser.width, "height": max(height, 100), "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
