"""A real dashboard server and a real headless Chromium driven over the Chrome DevTools protocol.

Chromium comes from Debian (install_chromium.sh, run when it is missing). The browser is started with
a remote-debugging port so the test can wait until Streamlit has rendered (it renders client-side,
after a websocket round trip), read the page's text and take a screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from letsjobit.dashboard import server
from websockets.sync.client import connect as websocket_connect

PROJECT_ROOT = Path(__file__).resolve().parents[2]
INSTALL_CHROMIUM = Path(__file__).with_name("install_chromium.sh")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1600,1100",
)


def chromium() -> str:
    """The chromium binary, installed from Debian by the project's own script when missing."""
    found = shutil.which("chromium")
    if not found:
        subprocess.run(["bash", str(INSTALL_CHROMIUM)], check=True, timeout=900)
        found = shutil.which("chromium")
    if not found:
        raise RuntimeError(f"{INSTALL_CHROMIUM} ran but chromium is still not on PATH")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback only)
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def dashboard_server(data_dir: Path, log_path: Path) -> Iterator[str]:
    """The dashboard served as `make dashboard` does, on a free loopback port; yields its base URL."""
    port = free_port()
    command = server.command("127.0.0.1", port)
    env = dict(os.environ, LETSJOBIT_DATA_DIR=str(data_dir))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: process.poll() is not None or _http_ok(f"{base_url}/_stcore/health"),
            60,
            "the dashboard's health endpoint",
        )
        if process.poll() is not None:
            raise RuntimeError(f"the dashboard exited with {process.returncode}; see {log_path}")
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Browser:
    """One headless Chromium tab over the DevTools protocol."""

    def __init__(self, socket_url: str):
        self._socket = websocket_connect(socket_url, max_size=64 * 1024 * 1024, open_timeout=10)
        self._ids = itertools.count(1)

    def call(self, method: str, **params) -> dict:
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=30))
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method} failed: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def count(self, selector: str) -> int:
        return int(self.evaluate(f"document.querySelectorAll({json.dumps(selector)}).length") or 0)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self._socket.close()


@contextlib.contextmanager
def headless_chromium() -> Iterator[Browser]:
    binary = chromium()
    # ignore_cleanup_errors: a crash reporter child may still be writing to the profile as it goes.
    with tempfile.TemporaryDirectory(prefix="letsjobit-chromium-", ignore_cleanup_errors=True) as profile:
        command = [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ]
        # A session of its own, so that its renderer and zygote children can be stopped with it.
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        browser = None
        try:
            # Chromium writes the port it picked to DevToolsActivePort in the profile.
            active_port = Path(profile) / "DevToolsActivePort"
            wait_until(
                lambda: active_port.exists() and active_port.read_text().strip(),
                30,
                "chromium's DevTools port",
            )
            port = active_port.read_text().split()[0]
            targets = wait_until(
                lambda: [t for t in _json(f"http://127.0.0.1:{port}/json/list") if t.get("type") == "page"],
                30,
                "a chromium tab",
            )
            browser = Browser(targets[0]["webSocketDebuggerUrl"])
            browser.call("Page.enable")
            yield browser
        finally:
            if browser:
                browser.close()
            _stop_session(process)


def _stop_session(process: subprocess.Popen) -> None:
    """Stop a process started with start_new_session=True, and what is left of its process group."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _json(url: str):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback only)
            return json.load(response)
    except OSError:
        return []
