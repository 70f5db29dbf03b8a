"""The report in a real browser: headless Chromium loads it with no console errors and no network
requests, and a full-page screenshot is saved.

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON messages
separated by NUL bytes on file descriptors 3 and 4), so no driver package and no port are needed. Without
Chromium the test skips, unless CLIPSHIFT_REQUIRE_BROWSER=1 (CI), where it fails.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from clipshift.report import build_report

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--window-size=1280,900",
    "--remote-debugging-pipe",
]


def _chromium() -> str:
    exe = os.environ.get("CLIPSHIFT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if exe:
        return exe
    reason = "chromium is not installed (apt-get install chromium)"
    if os.environ.get("CLIPSHIFT_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + "; CLIPSHIFT_REQUIRE_BROWSER=1 requires it")
    pytest.skip(reason + "; set CLIPSHIFT_REQUIRE_BROWSER=1 to make this a failure")


class DevTools:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, exe: str, profile: Path) -> None:
        self.log = profile.with_name(profile.name + ".log")  # chromium's stderr, quoted if it dies
        # bash moves our stdin/stdout pipes to fds 3/4, where --remote-debugging-pipe expects them
        self.proc = subprocess.Popen(
            [
                "bash",
                "-c",
                'exec "$@" 3<&0 4>&1 0</dev/null 1>/dev/null',
                "-",
                exe,
                *FLAGS,
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log.open("wb"),
        )
        self.events: list[dict[str, Any]] = []
        self._inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        buf = b""
        while chunk := self.proc.stdout.read1(65536):
            buf += chunk
            *msgs, buf = buf.split(b"\0")
            for m in msgs:
                self._inbox.put(json.loads(m))
        self._inbox.put(None)

    def _pump(self, timeout: float) -> dict[str, Any] | None:
        try:
            msg = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return None
        if msg is None:
            tail = self.log.read_text(errors="replace")[-800:] if self.log.exists() else ""
            raise RuntimeError(f"chromium closed the DevTools pipe; its stderr ends with:\n{tail}")
        if "method" in msg:
            self.events.append(msg)
        return msg

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg).encode() + b"\0")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self._pump(deadline - time.monotonic())
            if reply is not None and reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
        raise TimeoutError(f"{method}: no reply within {timeout} s")

    def wait_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events:
                if e["method"] == method:
                    return e
            self._pump(max(deadline - time.monotonic(), 0.01))
        raise TimeoutError(f"no {method} within {timeout} s")

    def settle(self, seconds: float) -> None:
        """Collect whatever events arrive in the next `seconds` (late console errors, requests)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._pump(max(deadline - time.monotonic(), 0.01))

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the browser may already be gone
            self.send("Browser.close", timeout=5)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _problems(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        m, p = e["method"], e.get("params", {})
        if m == "Runtime.exceptionThrown":
            out.append(f"exception: {p['exceptionDetails'].get('text')}")
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append(f"console.{p['type']}: {[a.get('value') for a in p.get('args', [])]}")
        elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
            out.append(f"log error: {p['entry'].get('text')} ({p['entry'].get('url', '')})")
        elif m == "Network.loadingFailed":
            out.append(f"failed request: {p.get('errorText')} {p.get('blockedReason', '')}")
        elif m == "Network.requestWillBeSent" and not p["request"]["url"].startswith(("file:", "data:")):
            out.append(f"network request: {p['request']['url'][:120]}")
    return out


def test_report_renders_in_headless_chromium(tmp_path):
    from test_report import make_study

    exe = _chromium()
    study = make_study(tmp_path)
    report = build_report(study, tmp_path / "report.html", n_boot=200).path
    browser = DevTools(exe, tmp_path / "chromium-profile")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Page.navigate", {"url": report.resolve().as_uri()}, session=session)
        browser.wait_event("Page.loadEventFired", timeout=60)
        browser.settle(1.0)
        state = browser.send(
            "Runtime.evaluate",
            {
                "expression": "JSON.stringify({title: document.title, imgs: [...document.images].map("
                "i => i.complete && i.naturalWidth > 0), h2: document.querySelectorAll('h2').length,"
                " bold: document.querySelectorAll('p.conclusion').length})",
                "returnByValue": True,
            },
            session=session,
        )
        page = json.loads(state["result"]["value"])
        size = browser.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        shot = browser.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": 1280, "height": min(size["height"], 12000), "scale": 1},
            },
            session=session,
            timeout=60,
        )
        good_events = list(browser.events)
        # negative control: the same checks must catch a page that fetches and logs an error
        bad = tmp_path / "bad.html"
        bad.write_text(
            '<!DOCTYPE html><html><head><meta charset="utf-8"><title>bad</title></head><body>'
            '<img src="http://127.0.0.1:9/x.png"><script>console.error("boom")</script></body></html>'
        )
        browser.events.clear()
        browser.send("Page.navigate", {"url": bad.resolve().as_uri()}, session=session)
        browser.wait_event("Page.loadEventFired", timeout=60)
        browser.settle(0.5)
        bad_problems = _problems(browser.events)
    finally:
        browser.close()
    png = tmp_path / "report.png"
    png.write_bytes(base64.b64decode(shot["data"]))
    if os.environ.get("CLIPSHIFT_SCREENSHOT_DIR"):  # keep it, e.g. as a CI artefact
        keep = Path(os.environ["CLIPSHIFT_SCREENSHOT_DIR"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(png, keep / "report.png")
    print(f"screenshot: {png}")
    assert _problems(good_events) == []
    assert any("127.0.0.1:9" in p for p in bad_problems) and any("boom" in p for p in bad_problems)
    assert page["title"] == "clipshift study: synthetic"
    assert page["imgs"] and all(page["imgs"]), page  # every embedded figure decoded
    assert page["bold"] >= 5 and page["h2"] >= 8
    assert png.stat().st_size > 50_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
