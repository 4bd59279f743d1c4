// SAM2 Points Editor (Wan-Animate Kit): an in-node editor for the WAK_Sam2PointsEditor node.
//
// The node's "points" widget holds the JSON the Python node reads:
//   [{"frame": i, "x": px, "y": py, "label": 1|0, "person": id}, ...]   (x, y in source pixels)
// This extension only edits that text: without it (API use) the widget is plain JSON.
// Frames, the tracked people and their keypoint prompts come from the pack's routes
// (nodes/editor_routes.py) for the session the node opens when it runs.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE_TYPE = "WAK_Sam2PointsEditor";
const ROUTE = "/wak/points_editor";
const HIT_RADIUS = 9; // CSS pixels around a point that grab it
const COLORS = ["#ffb000", "#38b6ff", "#ff5cd6", "#7dff6b", "#ff7a45", "#b18cff"];

function parsePoints(text) {
  try {
    const data = JSON.parse(text || "[]");
    const list = Array.isArray(data) ? data : [data];
    return list.filter((p) => p && typeof p === "object" && "x" in p && "y" in p).map((p) => ({
      frame: Number.isFinite(p.frame) ? p.frame : 0, x: Number(p.x), y: Number(p.y),
      label: p.label === 0 ? 0 : 1, person: Number.isFinite(p.person) ? p.person : -1,
    }));
  } catch (e) {
    return null; // hand-typed JSON that does not parse: the editor leaves it alone
  }
}

const round1 = (v) => Math.round(v * 10) / 10;

class PointsEditor {
  constructor(node) {
    this.node = node;
    this.session = null; // {session, frames, width, height, people, subject, preview_mask}
    this.frame = 0;
    this.person = null;
    this.image = null;
    this.people = null; // /people answer of the shown frame
    this.mask = null; // {frame, person, image}
    this.selected = -1; // index into the points list
    this.drag = null;
    this.build();
  }

  get widget() {
    return this.node.widgets?.find((w) => w.name === "points");
  }

  get points() {
    return parsePoints(this.widget?.value) || [];
  }

  setPoints(points) {
    const w = this.widget;
    if (!w) return;
    w.value = JSON.stringify(points.map((p) => ({ frame: p.frame, x: round1(p.x), y: round1(p.y),
      label: p.label, person: p.person })));
    if (w.inputEl) w.inputEl.value = w.value;
    w.callback?.(w.value);
    this.node.setDirtyCanvas?.(true, true);
    this.draw();
  }

  build() {
    const root = document.createElement("div");
    root.className = "wak-points-editor";
    root.style.cssText = "display:flex;flex-direction:column;gap:4px;width:100%;height:100%;font:12px sans-serif;" +
      "color:#ddd;box-sizing:border-box;";
    const bar = document.createElement("div");
    bar.style.cssText = "display:flex;gap:6px;align-items:center;flex-wrap:wrap;";
    this.personSelect = document.createElement("select");
    this.personSelect.className = "wak-person";
    this.personSelect.title = "The person new points belong to";
    this.personSelect.onchange = () => { this.person = Number(this.personSelect.value); this.draw(); };
    this.slider = document.createElement("input");
    this.slider.type = "range";
    this.slider.className = "wak-frame";
    this.slider.min = 0; this.slider.max = 0; this.slider.value = 0;
    this.slider.style.flex = "1";
    this.slider.oninput = () => this.showFrame(Number(this.slider.value));
    this.frameLabel = document.createElement("span");
    this.frameLabel.className = "wak-frame-label";
    this.previewButton = document.createElement("button");
    this.previewButton.className = "wak-preview";
    this.previewButton.textContent = "preview mask";
    this.previewButton.title = "Run SAM2 on this frame only for the chosen person (needs sam2_model)";
    this.previewButton.onclick = () => this.previewMask();
    const clear = document.createElement("button");
    clear.textContent = "clear frame";
    clear.title = "Delete the chosen person's points on this frame";
    clear.onclick = () => this.setPoints(this.points.filter((p) => !(p.frame === this.frame && p.person === this.person)));
    bar.append("person", this.personSelect, this.slider, this.frameLabel, this.previewButton, clear);
    this.canvas = document.createElement("canvas");
    this.canvas.className = "wak-canvas";
    this.canvas.tabIndex = 0;
    this.canvas.style.cssText = "flex:1;width:100%;min-height:0;background:#111;outline:none;cursor:crosshair;";
    this.status = document.createElement("div");
    this.status.className = "wak-status";
    this.status.style.cssText = "min-height:14px;opacity:.8;";
    this.status.textContent = "Run the graph (or this node) once to load the frames. Left click: positive, " +
      "right click: negative, drag to move, Shift+click or Delete to remove.";
    root.append(bar, this.canvas, this.status);
    this.root = root;
    const c = this.canvas;
    c.addEventListener("contextmenu", (e) => e.preventDefault());
    c.addEventListener("pointerdown", (e) => this.onDown(e));
    c.addEventListener("pointermove", (e) => this.onMove(e));
    c.addEventListener("pointerup", (e) => this.onUp(e));
    c.addEventListener("keydown", (e) => {
      if ((e.key === "Delete" || e.key === "Backspace") && this.selected >= 0) {
        const pts = this.points; pts.splice(this.selected, 1); this.selected = -1; this.setPoints(pts);
        e.preventDefault(); e.stopPropagation();
      }
    });
    for (const ev of ["wheel", "pointerdown", "pointermove", "pointerup", "keydown"])
      root.addEventListener(ev, (e) => e.stopPropagation()); // keep the canvas from panning the graph
    new ResizeObserver(() => this.draw()).observe(c);
  }

  // --- geometry: source pixels <-> CSS pixels inside the canvas element
  view() {
    const r = this.canvas.getBoundingClientRect();
    const W = this.session?.width || 1, H = this.session?.height || 1;
    const s = Math.min(r.width / W, r.height / H) || 1;
    return { r, s, ox: (r.width - W * s) / 2, oy: (r.height - H * s) / 2 };
  }

  toSource(e) {
    const { r, s, ox, oy } = this.view();
    return [(e.clientX - r.left - ox) / s, (e.clientY - r.top - oy) / s];
  }

  hit(e) {
    const { r, s, ox, oy } = this.view();
    const mx = e.clientX - r.left, my = e.clientY - r.top;
    let best = -1, bestD = HIT_RADIUS;
    this.points.forEach((p, i) => {
      if (p.frame !== this.frame) return;
      const d = Math.hypot(ox + p.x * s - mx, oy + p.y * s - my);
      if (d <= bestD) { best = i; bestD = d; }
    });
    return best;
  }

  inside(x, y) {
    return this.session && x >= 0 && y >= 0 && x < this.session.width && y < this.session.height;
  }

  onDown(e) {
    if (!this.session) return;
    e.preventDefault();
    this.canvas.focus();
    const i = this.hit(e);
    const pts = this.points;
    if (i >= 0 && e.shiftKey) { pts.splice(i, 1); this.selected = -1; this.setPoints(pts); return; }
    if (i >= 0 && e.button === 0) {
      this.selected = i; this.drag = { index: i, moved: false };
      this.canvas.setPointerCapture?.(e.pointerId); this.draw(); return;
    }
    if (e.button !== 0 && e.button !== 2) return;
    const [x, y] = this.toSource(e);
    if (!this.inside(x, y)) return;
    pts.push({ frame: this.frame, x, y, label: e.button === 0 ? 1 : 0, person: this.person ?? -1 });
    this.selected = pts.length - 1;
    this.setPoints(pts);
  }

  onMove(e) {
    if (!this.drag) return;
    const [x, y] = this.toSource(e);
    if (!this.inside(x, y)) return;
    const pts = this.points;
    const p = pts[this.drag.index];
    if (!p) return;
    p.x = x; p.y = y; this.drag.moved = true;
    this.dragPoints = pts;
    this.drawWith(pts);
  }

  onUp(e) {
    if (!this.drag) return;
    if (this.drag.moved && this.dragPoints) this.setPoints(this.dragPoints);
    this.drag = null; this.dragPoints = null;
  }

  // --- data from the routes
  async start(info) {
    const fresh = !this.session || this.session.width !== info.width || this.session.height !== info.height;
    this.session = info;
    this.slider.max = Math.max(0, info.frames - 1);
    if (fresh || this.frame >= info.frames) this.frame = 0;
    this.slider.value = this.frame;
    const ids = info.people || [];
    if (this.person === null || !ids.includes(this.person)) this.person = info.subject;
    this.personSelect.replaceChildren(...ids.map((id) => {
      const o = document.createElement("option");
      o.value = id; o.textContent = `${id}${id === info.subject ? " (subject)" : ""}`;
      return o;
    }));
    this.personSelect.value = this.person;
    this.previewButton.disabled = !info.preview_mask;
    this.mask = null;
    await this.showFrame(this.frame);
  }

  async showFrame(index) {
    if (!this.session) return;
    this.frame = index;
    this.slider.value = index;
    this.frameLabel.textContent = `frame ${index} / ${this.session.frames - 1}`;
    this.selected = -1;
    const q = `session=${this.session.session}&index=${index}`;
    const img = new Image();
    const loaded = new Promise((ok, fail) => { img.onload = ok; img.onerror = fail; });
    img.src = api.apiURL(`${ROUTE}/frame?${q}`);
    try {
      const [, res] = await Promise.all([loaded, api.fetchApi(`${ROUTE}/people?${q}`)]);
      if (index !== this.frame) return; // the slider moved on meanwhile
      this.image = img;
      this.people = await res.json();
      this.status.textContent = this.people.keyframe
        ? "Official keyframe: the subject's keypoint prompts (diamonds) are used on this frame."
        : "Diamonds: the person's keypoint prompts (used on keyframes only).";
    } catch (e) {
      this.image = null; this.people = null;
      this.status.textContent = "Frames unavailable: run the graph (or this node) again.";
    }
    this.draw();
  }

  async previewMask() {
    if (!this.session) return;
    this.status.textContent = "SAM2 on this frame...";
    const res = await api.fetchApi(`${ROUTE}/preview_mask`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ session: this.session.session, frame: this.frame, person: this.person,
        points: this.points }),
    });
    const body = await res.json();
    if (!res.ok) { this.status.textContent = body.error || `preview failed (${res.status})`; return; }
    const img = new Image();
    await new Promise((ok) => { img.onload = ok; img.onerror = ok; img.src = "data:image/png;base64," + body.mask; });
    // the mask as a tinted layer: white = the person
    const layer = document.createElement("canvas");
    layer.width = body.width; layer.height = body.height;
    const g = layer.getContext("2d");
    g.drawImage(img, 0, 0);
    const data = g.getImageData(0, 0, layer.width, layer.height);
    for (let i = 0; i < data.data.length; i += 4) {
      const on = data.data[i] > 127;
      data.data[i] = 40; data.data[i + 1] = 160; data.data[i + 2] = 255; data.data[i + 3] = on ? 110 : 0;
    }
    g.putImageData(data, 0, 0);
    this.mask = { frame: this.frame, person: this.person, image: layer, area: body.area };
    this.status.textContent = `Mask preview: ${body.area} pixel(s) from ${body.points} prompt point(s).`;
    this.draw();
  }

  // --- drawing
  draw() { this.drawWith(this.points); }

  drawWith(points) {
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const { r, s, ox, oy } = this.view();
    if (!r.width || !r.height) return;
    c.width = Math.round(r.width * dpr); c.height = Math.round(r.height * dpr);
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, r.width, r.height);
    if (!this.session) return;
    const W = this.session.width, H = this.session.height;
    const X = (x) => ox + x * s, Y = (y) => oy + y * s;
    if (this.image) g.drawImage(this.image, ox, oy, W * s, H * s);
    if (this.mask && this.mask.frame === this.frame && this.mask.person === this.person)
      g.drawImage(this.mask.image, ox, oy, W * s, H * s);
    const color = (id) => COLORS[((this.session.people || []).indexOf(id) + COLORS.length) % COLORS.length];
    for (const p of this.people?.people || []) {
      const [x1, y1, x2, y2] = p.box;
      const active = p.id === this.person;
      g.strokeStyle = color(p.id); g.lineWidth = active ? 2.5 : 1.2;
      g.setLineDash(active ? [] : [5, 4]);
      g.strokeRect(X(x1), Y(y1), (x2 - x1) * s, (y2 - y1) * s);
      g.setLineDash([]);
      g.fillStyle = color(p.id);
      g.font = "bold 12px sans-serif";
      g.fillText(`id ${p.id}${p.subject ? " subject" : ""}`, X(x1) + 2, Math.max(12, Y(y1) - 3));
      g.globalAlpha = active ? 0.95 : 0.45;
      for (const [ax, ay] of p.auto) { // the automatic keypoint prompts: small diamonds
        g.beginPath(); g.moveTo(X(ax), Y(ay) - 4); g.lineTo(X(ax) + 4, Y(ay)); g.lineTo(X(ax), Y(ay) + 4);
        g.lineTo(X(ax) - 4, Y(ay)); g.closePath(); g.fill();
      }
      g.globalAlpha = 1;
    }
    points.forEach((p, i) => {
      if (p.frame !== this.frame) return;
      const mine = p.person === this.person || p.person === -1;
      g.globalAlpha = mine ? 1 : 0.45;
      g.beginPath(); g.arc(X(p.x), Y(p.y), 6, 0, Math.PI * 2);
      g.fillStyle = p.label === 1 ? "#2ee66b" : "#ff3b3b"; g.fill();
      g.lineWidth = i === this.selected ? 3 : 1.5; g.strokeStyle = i === this.selected ? "#fff" : "#000"; g.stroke();
      g.fillStyle = "#000"; g.font = "bold 10px sans-serif";
      g.fillText(p.label === 1 ? "+" : "-", X(p.x) - 3, Y(p.y) + 3.5);
      g.globalAlpha = 1;
    });
    const elsewhere = points.filter((p) => p.frame !== this.frame).length;
    if (elsewhere) {
      g.fillStyle = "#ddd"; g.font = "11px sans-serif";
      g.fillText(`${elsewhere} point(s) on other frames`, 6, r.height - 6);
    }
  }
}

app.registerExtension({
  name: "WanAnimateKit.PointsEditor",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE_TYPE) return;
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const r = created?.apply(this, arguments);
      const editor = new PointsEditor(this);
      this.wakPointsEditor = editor;
      this.addDOMWidget("points_editor", "wak_points_editor", editor.root, {
        serialize: false, hideOnZoom: false, getMinHeight: () => 360, getValue: () => undefined,
        setValue: () => {},
      });
      const w = editor.widget;
      if (w) { // redraw when the JSON is typed by hand
        const cb = w.callback;
        w.callback = function () { const out = cb?.apply(this, arguments); editor.draw(); return out; };
      }
      const [minW, minH] = this.size;
      this.setSize([Math.max(minW, 520), Math.max(minH, 560)]);
      return r;
    };
    const executed = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      const r = executed?.apply(this, arguments);
      const info = message?.wak_points_editor?.[0];
      if (info && this.wakPointsEditor) this.wakPointsEditor.start(info);
      return r;
    };
  },
});

export { parsePoints, PointsEditor };
