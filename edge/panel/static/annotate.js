// beltcam panel, Annotate page: draw an evaluation mask over a C1 frame and save it.
// The truth is `labels`, one byte per frame pixel (0 background, 1 illegal, 2 legal); the canvases
// only show it. It is sent as it is (base64), so no smoothing of a drawing can invent a class.
"use strict";

(() => {
  const root = document.getElementById("annotate");
  if (!root) return;

  const W = Number(root.dataset.width);
  const H = Number(root.dataset.height);
  const api = root.dataset.api;
  const canSave = root.dataset.canSave === "1";
  const COLOURS = { 1: [230, 40, 40, 140], 2: [40, 200, 60, 140] }; // as the overlays elsewhere
  const UNDO_STEPS = 30;
  const CLOSE_PX = 10; // a click this near the first corner closes the polygon (screen pixels)

  const labelCanvas = document.getElementById("annotate-labels");
  const drawCanvas = document.getElementById("annotate-draw");
  const labelPen = labelCanvas.getContext("2d");
  const drawPen = drawCanvas.getContext("2d");
  const shown = labelPen.createImageData(W, H);
  const status = document.getElementById("annotate-status");
  const sizeInput = document.getElementById("annotate-size");
  const sizeValue = document.getElementById("annotate-size-value");
  const undoButton = document.getElementById("annotate-undo");
  const saveButton = document.getElementById("annotate-save");

  let labels = new Uint8Array(W * H);
  const undoStack = [];
  let stroke = null; // the last point of the brush stroke under way
  let polygon = []; // corners of the polygon under way, frame coordinates
  let cursor = null;
  let dirty = false;

  const tool = () => document.querySelector("input[name=tool]:checked").value;
  const labelClass = () => Number(document.querySelector("input[name=label]:checked").value);
  const brushRadius = () => Math.max(0.5, Number(sizeInput.value) / 2);

  function say(text, kind) {
    status.textContent = text;
    status.className = kind || "";
  }

  function changed() {
    dirty = true;
    say("Unsaved changes.", "");
  }

  // --- showing the labels -------------------------------------------------------------------
  function paint(x0, y0, x1, y1) {
    x0 = Math.max(0, Math.floor(x0));
    y0 = Math.max(0, Math.floor(y0));
    x1 = Math.min(W, Math.ceil(x1));
    y1 = Math.min(H, Math.ceil(y1));
    if (x1 <= x0 || y1 <= y0) return;
    const data = shown.data;
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const i = y * W + x;
        const colour = COLOURS[labels[i]];
        const p = i * 4;
        if (colour) {
          data[p] = colour[0]; data[p + 1] = colour[1]; data[p + 2] = colour[2]; data[p + 3] = colour[3];
        } else {
          data[p + 3] = 0;
        }
      }
    }
    labelPen.putImageData(shown, 0, 0, x0, y0, x1 - x0, y1 - y0);
  }

  const paintAll = () => paint(0, 0, W, H);

  // --- the preview layer: polygon under way and the brush outline, at screen resolution --------
  function fitStage() {
    // the whole frame in the window: as wide as the height left allows (CSSOM, not a style attribute)
    const room = Math.max(320, Math.round(((window.innerHeight - 140) * W) / H));
    drawCanvas.parentElement.style.maxWidth = `${room}px`;
  }

  function fitDrawCanvas() {
    const box = drawCanvas.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    drawCanvas.width = Math.max(1, Math.round(box.width * ratio));
    drawCanvas.height = Math.max(1, Math.round(box.height * ratio));
    preview();
  }

  function preview() {
    const sx = drawCanvas.width / W;
    const sy = drawCanvas.height / H;
    drawPen.clearRect(0, 0, drawCanvas.width, drawCanvas.height);
    drawPen.lineWidth = Math.max(1, (window.devicePixelRatio || 1) * 1.5);
    if (polygon.length) {
      drawPen.strokeStyle = labelClass() === 1 ? "rgb(255, 80, 80)" : "rgb(80, 230, 100)";
      drawPen.beginPath();
      polygon.forEach(([x, y], i) => (i ? drawPen.lineTo(x * sx, y * sy) : drawPen.moveTo(x * sx, y * sy)));
      if (cursor) drawPen.lineTo(cursor[0] * sx, cursor[1] * sy);
      drawPen.stroke();
      drawPen.fillStyle = "#fff";
      drawPen.fillRect(polygon[0][0] * sx - 3, polygon[0][1] * sy - 3, 6, 6);
    }
    if (cursor && tool() !== "polygon") {
      drawPen.strokeStyle = "rgba(255, 255, 255, 0.8)";
      drawPen.beginPath();
      drawPen.ellipse(cursor[0] * sx, cursor[1] * sy, brushRadius() * sx, brushRadius() * sy, 0, 0, 2 * Math.PI);
      drawPen.stroke();
    }
  }

  // --- drawing into the labels --------------------------------------------------------------
  function remember() {
    undoStack.push(labels.slice());
    if (undoStack.length > UNDO_STEPS) undoStack.shift();
    undoButton.disabled = false;
  }

  function disc(cx, cy, radius, value) {
    const x0 = Math.max(0, Math.floor(cx - radius));
    const y0 = Math.max(0, Math.floor(cy - radius));
    const x1 = Math.min(W, Math.ceil(cx + radius));
    const y1 = Math.min(H, Math.ceil(cy + radius));
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const dx = x + 0.5 - cx;
        const dy = y + 0.5 - cy;
        if (dx * dx + dy * dy <= radius * radius) labels[y * W + x] = value;
      }
    }
    const px = Math.floor(cx);
    const py = Math.floor(cy);
    if (px >= 0 && px < W && py >= 0 && py < H) labels[py * W + px] = value; // a 1 px brush still marks
  }

  function brushLine(from, to) {
    const radius = brushRadius();
    const value = tool() === "eraser" ? 0 : labelClass();
    const steps = Math.max(1, Math.ceil(Math.hypot(to[0] - from[0], to[1] - from[1]) / Math.max(radius / 2, 0.5)));
    for (let s = 0; s <= steps; s++) {
      const t = s / steps;
      disc(from[0] + (to[0] - from[0]) * t, from[1] + (to[1] - from[1]) * t, radius, value);
    }
    paint(Math.min(from[0], to[0]) - radius - 1, Math.min(from[1], to[1]) - radius - 1,
      Math.max(from[0], to[0]) + radius + 2, Math.max(from[1], to[1]) + radius + 2);
  }

  function fillPolygon(corners, value) {
    // even-odd scanlines through pixel centres: a pixel belongs if its centre is inside
    const ys = corners.map((c) => c[1]);
    const y0 = Math.max(0, Math.floor(Math.min(...ys)));
    const y1 = Math.min(H - 1, Math.ceil(Math.max(...ys)));
    for (let y = y0; y <= y1; y++) {
      const yc = y + 0.5;
      const crossings = [];
      corners.forEach((a, i) => {
        const b = corners[(i + 1) % corners.length];
        if ((a[1] <= yc) !== (b[1] <= yc)) crossings.push(a[0] + ((yc - a[1]) * (b[0] - a[0])) / (b[1] - a[1]));
      });
      crossings.sort((p, q) => p - q);
      for (let k = 0; k + 1 < crossings.length; k += 2) {
        const from = Math.max(0, Math.ceil(crossings[k] - 0.5));
        const to = Math.min(W - 1, Math.floor(crossings[k + 1] - 0.5));
        for (let x = from; x <= to; x++) labels[y * W + x] = value;
      }
    }
    const xs = corners.map((c) => c[0]);
    paint(Math.min(...xs) - 1, y0, Math.max(...xs) + 2, y1 + 1);
  }

  function closePolygon() {
    if (polygon.length < 3) {
      say("A polygon needs at least 3 corners.", "error");
      return;
    }
    remember();
    fillPolygon(polygon, labelClass());
    polygon = [];
    preview();
    changed();
  }

  function undo() {
    if (polygon.length) {
      polygon.pop();
    } else if (undoStack.length) {
      labels = undoStack.pop();
      paintAll();
      changed();
    }
    undoButton.disabled = !undoStack.length && !polygon.length;
    preview();
  }

  // --- the pointer --------------------------------------------------------------------------
  function framePoint(event) {
    const box = drawCanvas.getBoundingClientRect();
    return [((event.clientX - box.left) / box.width) * W, ((event.clientY - box.top) / box.height) * H];
  }

  function nearFirstCorner(event) {
    if (polygon.length < 3) return false;
    const box = drawCanvas.getBoundingClientRect();
    const fx = box.left + (polygon[0][0] / W) * box.width;
    const fy = box.top + (polygon[0][1] / H) * box.height;
    return Math.hypot(event.clientX - fx, event.clientY - fy) <= CLOSE_PX;
  }

  function onDown(event) {
    if (event.button !== 0) return;
    event.preventDefault();
    const point = framePoint(event);
    if (tool() === "polygon") {
      if (nearFirstCorner(event)) {
        closePolygon();
      } else {
        polygon.push(point);
        undoButton.disabled = false;
        preview();
      }
      return;
    }
    drawCanvas.setPointerCapture(event.pointerId);
    remember();
    stroke = point;
    brushLine(point, point);
    changed();
  }

  function onMove(event) {
    cursor = framePoint(event);
    if (stroke) {
      brushLine(stroke, cursor);
      stroke = cursor;
    }
    preview();
  }

  function onUp() {
    stroke = null;
  }

  function onKey(event) {
    if (event.target instanceof HTMLInputElement && event.target.type === "number") return;
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
      event.preventDefault();
      undo();
    } else if (event.key === "Enter" && polygon.length) {
      event.preventDefault();
      closePolygon();
    } else if (event.key === "Escape" && polygon.length) {
      polygon = [];
      undoButton.disabled = !undoStack.length;
      preview();
    }
  }

  // --- loading and saving -------------------------------------------------------------------
  function toBase64(bytes) {
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(text);
  }

  function fromBase64(text) {
    const raw = atob(text);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  async function answer(response) {
    try {
      return await response.json();
    } catch (error) {
      return { error: `the panel answered ${response.status} ${response.statusText}` };
    }
  }

  async function load() {
    const response = await fetch(api, { credentials: "same-origin" });
    const body = await answer(response);
    if (!response.ok) throw new Error(body.error || `the panel answered ${response.status}`);
    if (body.mask) {
      const stored = fromBase64(body.mask.labels);
      if (stored.length === labels.length) labels.set(stored);
      paintAll();
      say(`Loaded the frame's ${body.mask.origin} mask of ${body.mask.created_utc} UTC; saving replaces it.`, "");
    } else {
      paintAll();
      say("No mask yet: everything is background until you draw.", "");
    }
  }

  async function save() {
    saveButton.disabled = true;
    say("Saving…", "");
    try {
      const token = document.querySelector("meta[name=csrf-token]").content;
      const response = await fetch(api, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": token },
        body: JSON.stringify({ width: W, height: H, labels: toBase64(labels) }),
      });
      const body = await answer(response);
      if (response.ok && body.ok) {
        dirty = false;
        say(body.message, "ok");
      } else {
        say(`Not saved: ${body.error || response.status}`, "error");
      }
    } catch (error) {
      say(`Not saved: ${error.message} (is the panel reachable?)`, "error");
    } finally {
      saveButton.disabled = !canSave;
    }
  }

  // --- wiring -------------------------------------------------------------------------------
  function start() {
    drawCanvas.addEventListener("pointerdown", onDown);
    drawCanvas.addEventListener("pointermove", onMove);
    drawCanvas.addEventListener("pointerup", onUp);
    drawCanvas.addEventListener("pointercancel", onUp);
    drawCanvas.addEventListener("pointerleave", () => { cursor = null; preview(); });
    drawCanvas.addEventListener("dblclick", (event) => {
      if (tool() === "polygon" && polygon.length >= 3) {
        event.preventDefault();
        closePolygon();
      }
    });
    document.addEventListener("keydown", onKey);
    undoButton.addEventListener("click", undo);
    document.getElementById("annotate-clear").addEventListener("click", () => {
      remember();
      labels.fill(0);
      paintAll();
      changed();
    });
    document.getElementById("annotate-show").addEventListener("change", (event) => {
      labelCanvas.classList.toggle("hidden", !event.target.checked);
    });
    sizeInput.addEventListener("input", () => { sizeValue.textContent = sizeInput.value; preview(); });
    document.querySelectorAll("input[name=tool], input[name=label]").forEach((input) => {
      input.addEventListener("change", () => {
        if (tool() !== "polygon") polygon = [];
        preview();
      });
    });
    if (canSave) saveButton.addEventListener("click", save);
    window.addEventListener("beforeunload", (event) => {
      if (dirty) event.preventDefault();
    });
    window.addEventListener("resize", fitStage);
    fitStage();
    new ResizeObserver(fitDrawCanvas).observe(drawCanvas);
    sizeValue.textContent = sizeInput.value;
    fitDrawCanvas();
    root.dataset.ready = "1"; // the tests wait for this before they draw
  }

  load()
    .then(start)
    .catch((error) => say(`Cannot annotate this frame: ${error.message}`, "error"));
})();
