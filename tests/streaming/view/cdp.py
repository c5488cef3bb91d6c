"""A minimal Chrome DevTools Protocol client for headless Chromium (Debian's `chromium` package).

Enough for the page tests: start the browser, open a URL, evaluate JavaScript, wait for a condition,
save a screenshot. No driver download: the browser is the system's, reached over its DevTools
websocket (``websockets`` sync client).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from websockets.sync.client import connect


def find_chromium() -> str | None:
    """Path of a Chromium binary on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """A headless Chromium process and a DevTools session on its one page.

    Parameters
    ----------
    binary : str
    profile_dir : Path
        Empty folder for the browser profile (and its stderr log, ``chromium.log``).
    width, height : int
        Window size in CSS pixels.
    """

    def __init__(self, binary: str, profile_dir: Path, width: int = 1400, height: int = 1150,
                 start_timeout_s: float = 30.0) -> None:
        self.log_path = profile_dir / "chromium.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--mute-audio",
             "--remote-debugging-port=0", f"--user-data-dir={profile_dir}", f"--window-size={width},{height}",
             "about:blank"],
            stdout=self._log, stderr=self._log)
        port_file = profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + start_timeout_s
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"chromium did not open its DevTools port (exit {self.proc.returncode}); "
                                   f"log: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            pages = [t for t in json.load(reply) if t["type"] == "page"]
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=10))
        self._ids = itertools.count(1)
        # the whole page in the screenshots: the viewport, not the window (whose size includes no chrome
        # in headless mode but varies between versions)
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)

    def call(self, method: str, timeout_s: float = 30.0, **params) -> dict:
        """Send one DevTools command and return its ``result`` (events in between are skipped)."""
        call_id = next(self._ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout_s
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"DevTools {method} failed: {message['error']}")
                return message["result"]

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression (promises awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript error in {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float, what: str):
        """Poll ``expression`` until it is truthy; its value. Raises TimeoutError naming ``what``.

        A JavaScript error while polling (the page still loading: no ``document.body`` yet) counts as
        not yet; the last one is named in the timeout.
        """
        deadline = time.monotonic() + timeout_s
        value = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except RuntimeError as exc:
                value = exc
            else:
                if value:
                    return value
            time.sleep(0.2)
        error = self.evaluate("document.getElementById('error')?.textContent ?? null")
        raise TimeoutError(f"page did not show {what} within {timeout_s:g} s (last value {value!r}; page error: "
                           f"{error!r})")

    def screenshot(self, path: Path) -> Path:
        """Save a PNG of the page as it is now."""
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        stack = getattr(self, "_stack", None)
        if stack is not None:
            stack.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
