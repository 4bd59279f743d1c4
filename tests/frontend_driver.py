"""Drive the real ComfyUI frontend (served by a test host) in headless Chromium over CDP.

Only the Chromium DevTools protocol over a websocket (websocket-client): no browser download.
"""
from __future__ import annotations

import base64
import itertools
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
import urllib.request

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
                  "--disable-dev-shm-usage", "--window-size=2400,1500"]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


class Browser:
    def __init__(self, binary: str):
        import websocket

        self.profile = tempfile.mkdtemp(prefix="wak-chromium-")
        self.proc = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
                                      "--remote-debugging-port=0", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = pathlib.Path(self.profile) / "DevToolsActivePort"
        deadline = time.time() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if time.time() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("Chromium did not start (no DevToolsActivePort)")
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=120, suppress_origin=True)
        self._ids = itertools.count(1)
        self.console: list[str] = []
        self.call("Runtime.enable")
        self.call("Page.enable")

    def call(self, method: str, **params):
        msg_id = next(self._ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("method") == "Runtime.consoleAPICalled":
                args = msg["params"].get("args", [])
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def evaluate(self, expression: str, timeout: float = 60):
        res = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True,
                        timeout=int(timeout * 1000))
        if res.get("exceptionDetails"):
            raise RuntimeError(f"JS error: {json.dumps(res['exceptionDetails'])[:2000]}")
        return res.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if self.evaluate(f"Boolean({expression})", timeout=10):
                    return
            except RuntimeError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"timed out waiting for {expression}")

    def open(self, url: str):
        self.call("Page.navigate", url=url)
        self.wait_for("window.app && window.app.graph && window.LiteGraph && "
                      "Object.keys(LiteGraph.registered_node_types).length > 50")

    def screenshot(self, path: os.PathLike):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        pathlib.Path(path).write_bytes(base64.b64decode(data))

    def close(self):
        try:
            if getattr(self, "ws", None):
                self.ws.close()
        finally:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


def load_workflow(browser: Browser, workflow: dict) -> dict:
    """Load a UI workflow into the page; return what the frontend made of it."""
    wf = json.dumps(workflow)
    return browser.evaluate(f"""(async () => {{
        const wf = {wf};
        await window.app.loadGraphData(wf);
        await new Promise(r => setTimeout(r, 500));
        const types = LiteGraph.registered_node_types;
        const missing = wf.nodes.map(n => n.type).filter(t => !types[t]);
        const nodes = window.app.graph._nodes || window.app.graph.nodes;
        const bad = nodes.filter(n => n.has_errors || (n.type && !types[n.type])).map(n => n.type);
        const p = await window.app.graphToPrompt();
        return {{missing, bad, count: nodes.length, prompt: p.output}};
    }})()""", timeout=120)
