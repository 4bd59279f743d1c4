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

    def screenshot(self, path: os.PathLike, clip: tuple[float, float, float, float] | None = None):
        """A PNG of the page, or of ``clip`` = (x, y, width, height) in CSS pixels, at 100 %."""
        params = {"format": "png"}
        if clip is not None:
            x, y, w, h = clip
            params["clip"] = {"x": x, "y": y, "width": w, "height": h, "scale": 1}
        data = self.call("Page.captureScreenshot", **params)["data"]
        pathlib.Path(path).write_bytes(base64.b64decode(data))

    def set_viewport(self, width: int, height: int):
        """Resize the page's viewport (CSS pixels, device scale 1); waits until the canvas follows."""
        self.call("Emulation.setDeviceMetricsOverride", width=int(width), height=int(height), deviceScaleFactor=1,
                  mobile=False)
        self.wait_for(f"window.innerWidth === {int(width)} && window.innerHeight === {int(height)} && "
                      f"window.app.canvas.canvas.getBoundingClientRect().width > 0", timeout=30)
        time.sleep(0.3)  # the frontend resizes its canvas on the resize event

    def quiet_frontend(self):
        """Settings that keep banners and badges off the screenshots: the "Introducing Nodes 2.0"
        banner dismissed (the frontend keeps that in localStorage), node source badges off (they
        cover group titles). Reloads the page."""
        self.evaluate("localStorage.setItem('vueNodesBannerDismissed', 'true'); true")
        self.evaluate("(async () => { const s = window.app.extensionManager.setting;"
                      " await s.set('Comfy.NodeBadge.NodeSourceBadgeMode', 'None');"
                      " await s.set('Comfy.Minimap.Visible', false); return true; })()")
        self.call("Page.reload")
        time.sleep(0.5)
        self.wait_for("window.app && window.app.graph && window.LiteGraph && "
                      "Object.keys(LiteGraph.registered_node_types).length > 50")

    def dismiss_toasts(self):
        """Close the frontend's toasts (e.g. "Node definitions updated" after a combo refresh)."""
        self.evaluate("(() => { const t = window.app.extensionManager.toast; if (t && t.removeAll) t.removeAll();"
                      " document.querySelectorAll('.p-toast-close-button').forEach(b => b.click()); return true; })()")
        self.wait_for("document.querySelectorAll('.p-toast-message').length === 0", timeout=10)

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


def load_workflow(browser: Browser, workflow: dict, name: str | None = None) -> dict:
    """Load a UI workflow into the page (in a workflow tab called ``name`` when given, other tabs
    closed); return what the frontend made of it."""
    wf = json.dumps(workflow)
    return browser.evaluate(f"""(async () => {{
        const wf = {wf};
        await window.app.loadGraphData(wf, true, true, {json.dumps(name)});
        try {{
            const store = window.app.extensionManager.workflow;
            for (const w of [...(store.openWorkflows || [])])
                if (w !== store.activeWorkflow) await store.closeWorkflow(w);
        }} catch (e) {{ console.log('could not close the other workflow tabs: ' + e); }}
        await new Promise(r => setTimeout(r, 500));
        const types = LiteGraph.registered_node_types;
        const missing = wf.nodes.map(n => n.type).filter(t => !types[t]);
        const nodes = window.app.graph._nodes || window.app.graph.nodes;
        const bad = nodes.filter(n => n.has_errors || (n.type && !types[n.type])).map(n => n.type);
        const p = await window.app.graphToPrompt();
        return {{missing, bad, count: nodes.length, prompt: p.output}};
    }})()""", timeout=120)


# Screen layout of the frontend around the canvas (CSS pixels): the tab bar above, the icon sidebar on the left.
SHOT_MARGIN = 24


def graph_bounds(browser: Browser) -> list[float]:
    """[x0, y0, x1, y1] of every node and group of the loaded graph, in graph coordinates."""
    return browser.evaluate("""(() => {
        const g = window.app.graph; let b = [Infinity, Infinity, -Infinity, -Infinity];
        const add = (x, y, w, h) => { b = [Math.min(b[0], x), Math.min(b[1], y), Math.max(b[2], x + w),
                                          Math.max(b[3], y + h)]; };
        for (const n of (g._nodes || g.nodes)) add(n.pos[0], n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT, n.size[0],
                                                  n.size[1] + LiteGraph.NODE_TITLE_HEIGHT);
        for (const gr of (g._groups || [])) add(...gr._bounding);
        return b; })()""")


def take_screenshots(browser: Browser, folder: os.PathLike, name: str) -> list[pathlib.Path]:
    """Screenshots of the loaded workflow at 100 % zoom, toasts dismissed.

    ``<name>.png``: the whole window (named workflow tab, Run button) sized so the whole graph shows
    at 100 %; ``<name>-<k>.png``: each group of the graph alone at 100 % (legible at a README's
    width) with the nodes that start in it, numbered in the graph's group order. Returns the paths
    written."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    x0, y0, x1, y1 = graph_bounds(browser)
    # where the canvas area starts on the page: right of the sidebar, below the tab bar and the top menu
    left, top = browser.evaluate("""(() => {
        const side = document.querySelector('.side-tool-bar-container, nav.side-tool-bar-container');
        const tabs = document.querySelector('.workflow-tabs-container, .top-menu-bar, .comfyui-menu');
        const l = side ? side.getBoundingClientRect().right : 48;
        const t = tabs ? tabs.getBoundingClientRect().bottom : 40;
        return [Math.ceil(l), Math.ceil(t)]; })()""")
    pad = SHOT_MARGIN
    top += 56  # the floating workflow name and the Run bar sit just below the tabs
    width = int(left + pad + (x1 - x0) + pad)
    height = int(top + pad + (y1 - y0) + pad + 64)  # the canvas toolbar (zoom, fit) floats at the bottom
    browser.set_viewport(max(width, 1280), max(height, 720))
    ox, oy = left + pad - x0, top + pad - y0
    browser.evaluate(f"(() => {{ const c = window.app.canvas; c.ds.scale = 1; c.ds.offset = [{ox}, {oy}];"
                     " c.show_info = false;"
                     " c.setDirty(true, true); c.draw(true, true); return true; })()")
    browser.dismiss_toasts()
    time.sleep(0.5)
    paths = [folder / f"{name}.png"]
    browser.screenshot(paths[0], (0, 0, max(width, 1280), max(height, 720)))
    # each group with the whole of every node that starts inside it (a tall node may hang out of its group)
    regions = browser.evaluate("""(() => {
        const g = window.app.graph, th = LiteGraph.NODE_TITLE_HEIGHT;
        return (g._groups || []).map(gr => {
            const [x, y, w, h] = gr._bounding; let b = [x, y, x + w, y + h];
            for (const n of (g._nodes || g.nodes))
                if (n.pos[0] >= x && n.pos[0] < x + w && n.pos[1] >= y && n.pos[1] < y + h)
                    b = [b[0], b[1], Math.max(b[2], n.pos[0] + n.size[0]), Math.max(b[3], n.pos[1] + n.size[1])];
            return b; }); })()""")
    for k, (gx0, gy0, gx1, gy1) in enumerate(regions, 1):
        path = folder / f"{name}-{k}.png"
        browser.screenshot(path, (gx0 + ox - 8, gy0 + oy - 8, gx1 - gx0 + 16, gy1 - gy0 + 16))
        paths.append(path)
    return paths
