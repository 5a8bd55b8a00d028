// alphacut's web page: the editor, which corrects a cut-out in a few clicks (issue 26).
//
// The server corrects the mask from hints: a box the subject lies in, and clicks that mark a
// pixel as subject or background. It keeps no state: each request carries every hint so far
// and the id of the automatic cut-out to correct (no model runs again), so an undo is one hint
// fewer, and the answers are kept here by their hints (an undo or redo is instant). While the
// editor is open the photo and its automatic cut-out are on the server (uploaded when it
// opens, deleted when it closes); each answer is deleted as soon as it is downloaded, and only
// the latest hints are asked for (clicks made while an answer is on its way go together).
//
// The brushes are the page's own, for the last pixels: erase makes them transparent, restore
// brings back the photo's own, painted over each answer in the order they were made. Done
// writes the result as an exact PNG at the photo's size (files.js), which the card then shows
// and downloads.
"use strict";

const EDITOR_ZOOM = { min: 0.02, max: 8 }; // 800%: single pixels of an edge, drawn square
const ZOOM_STEPS = [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8];
const MAX_CLICKS = 100; // the server's limit on points in one request
const CLICK_SLOP = 6; // CSS px: a press that moves further is a drag, not a click
const KEEP_DECODED = 6; // answers kept as pixels; older ones stay PNG files until needed
const DOT_RADIUS = 7; // CSS px: a click's dot, at any zoom

let session = null; // the editor's one open session

const editorDialog = () => $("#editor");

// Edits -------------------------------------------------------------------------------------
// { kind: "box", box: {x1, y1, x2, y2} } | { kind: "point", x, y, label }
// | { kind: "stroke", mode: "erase" | "restore", size, path: [[x, y], ...], cover }

function hintsOf(edits) {
  let box = null;
  const points = [];
  for (const edit of edits) {
    if (edit.kind === "box") box = edit.box;
    else if (edit.kind === "point") points.push({ x: edit.x, y: edit.y, label: edit.label });
  }
  return { box, points };
}

// The answer a list of edits needs from the server, by its hints ("" for none).
function hintKey(edits) {
  const { box, points } = hintsOf(edits);
  return box || points.length ? JSON.stringify({ box, points }) : "";
}

const capitalised = (text) => text[0].toUpperCase() + text.slice(1);

function plural(count, one, many) {
  return `${count} ${count === 1 ? one : many}`;
}

function describeEdits(edits) {
  const boxes = edits.filter((edit) => edit.kind === "box").length;
  const clicks = edits.filter((edit) => edit.kind === "point").length;
  const strokes = edits.filter((edit) => edit.kind === "stroke").length;
  const parts = [];
  if (boxes) parts.push("a box");
  if (clicks) parts.push(plural(clicks, "click", "clicks"));
  if (strokes) parts.push(plural(strokes, "brush stroke", "brush strokes"));
  if (!parts.length) return "no corrections";
  return parts.length > 1 ? `${parts.slice(0, -1).join(", ")} and ${parts.at(-1)}` : parts[0];
}

// The pixels a brush stroke covers, worked out once (where the browser draws the stroke's
// round line at least half opaque), as a rectangle and a bit per pixel in it.
function strokeCover(path, size, width, height) {
  const radius = size / 2;
  const xs = path.map((p) => p[0]);
  const ys = path.map((p) => p[1]);
  const x = Math.max(0, Math.floor(Math.min(...xs) - radius - 1));
  const y = Math.max(0, Math.floor(Math.min(...ys) - radius - 1));
  const right = Math.min(width, Math.ceil(Math.max(...xs) + radius + 1));
  const bottom = Math.min(height, Math.ceil(Math.max(...ys) + radius + 1));
  const w = Math.max(0, right - x);
  const h = Math.max(0, bottom - y);
  const inside = new Uint8Array(w * h);
  if (!w || !h) return { x, y, w, h, inside };
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.translate(-x, -y);
  context.fillStyle = context.strokeStyle = "#000";
  context.lineWidth = size;
  context.lineCap = context.lineJoin = "round";
  for (const [px, py] of path) {
    context.beginPath();
    context.arc(px, py, radius, 0, 2 * Math.PI);
    context.fill();
  }
  if (path.length > 1) {
    context.beginPath();
    context.moveTo(...path[0]);
    for (const point of path.slice(1)) context.lineTo(...point);
    context.stroke();
  }
  const { data } = context.getImageData(0, 0, w, h);
  for (let i = 0; i < inside.length; i += 1) inside[i] = data[i * 4 + 3] >= 128 ? 1 : 0;
  return { x, y, w, h, inside };
}

// Each stroke in order over `rgba`: erase clears a pixel (colour too: nothing of what was
// erased stays in the file), restore puts back the photo's pixel, opaque.
function paintStrokes(rgba, edits, photo, width) {
  for (const edit of edits) {
    if (edit.kind !== "stroke") continue;
    const { x, y, w, h, inside } = edit.cover;
    const erase = edit.mode === "erase";
    for (let j = 0; j < h; j += 1) {
      for (let i = 0; i < w; i += 1) {
        if (!inside[j * w + i]) continue;
        const p = ((y + j) * width + x + i) * 4;
        if (erase) {
          rgba[p] = 0; rgba[p + 1] = 0; rgba[p + 2] = 0; rgba[p + 3] = 0;
        } else {
          rgba[p] = photo[p]; rgba[p + 1] = photo[p + 1]; rgba[p + 2] = photo[p + 2]; rgba[p + 3] = 255;
        }
      }
    }
  }
  return rgba;
}

// Opening and closing ---------------------------------------------------------------------------

async function openEditor(card) {
  if (session || card.dataset.state !== "done" || !card.automatic || !card.original) return;
  const dialog = editorDialog();
  const s = {
    card,
    edits: [...(card.edits || [])],
    undone: [],
    answers: new Map(),
    pending: null,
    halted: false,
    shownKey: null,
    result: null,
    ids: null,
    tool: $("input[name=editor-tool]:checked", dialog).value,
    original: false,
    view: { z: 1, x: 0, y: 0, fit: true },
    pointers: new Map(),
    gesture: null,
    hover: null,
    escape: false,
    waiters: [],
  };
  session = s;
  $(".editor-name", dialog).textContent = $(".card-title", card).textContent;
  $(".before-after", dialog).setAttribute("aria-pressed", "false");
  $(".editor-keys", dialog).open = false;
  say(s, "Opening…");
  sayError("");
  dialog.dataset.state = "loading";
  dialog.showModal();
  $(".editor-view", dialog).focus();
  try {
    const [photo, automatic] = await Promise.all([imagePixels(card.original), imagePixels(card.automatic)]);
    if (photo.width !== automatic.width || photo.height !== automatic.height) {
      throw new Error(`the photo is ${photo.width}×${photo.height} here and its cut-out `
        + `${automatic.width}×${automatic.height}`);
    }
    if (session !== s) return;
    Object.assign(s, { width: photo.width, height: photo.height, photo: photo.rgba, automatic: automatic.rgba });
  } catch (error) {
    if (session === s) sayError(`This cut-out cannot be edited: ${error.message}.`);
    return;
  }
  s.ids = uploadForHints(s);
  s.ids.catch(() => {}); // said when a click needs them
  const canvas = $(".editor-canvas", dialog);
  canvas.width = s.width;
  canvas.height = s.height;
  const overlay = $(".editor-overlay", dialog);
  overlay.setAttribute("viewBox", `0 0 ${s.width} ${s.height}`);
  overlay.setAttribute("width", String(s.width));
  overlay.setAttribute("height", String(s.height));
  fitView(s);
  refresh(s);
}

// The photo and its automatic cut-out, on the server for as long as the editor is open.
async function uploadForHints(s) {
  const name = baseName(s.card);
  const [photo, cutout] = await Promise.allSettled([
    upload(s.card.original, name),
    upload(s.card.automatic, `${name}-cutout.png`),
  ]);
  s.serverIds = [photo, cutout].filter((sent) => sent.status === "fulfilled").map((sent) => sent.value.id);
  if (session !== s || s.serverIds.length < 2) forgetUploads(s);
  for (const sent of [photo, cutout]) if (sent.status === "rejected") throw sent.reason;
  return { photo: photo.value.id, cutout: cutout.value.id };
}

function forgetUploads(s, keepalive = false) {
  for (const id of s.serverIds || []) deleteImage(id, { keepalive });
  s.serverIds = [];
}

async function finishEditing() {
  const s = session;
  if (!s || !s.photo || s.finishing) return;
  s.finishing = true;
  say(s, "Finishing…");
  await settled(s);
  if (session !== s) return;
  if (!upToDate(s)) {
    s.finishing = false;
    sayError("The last correction could not be applied: undo it or try again before Done.");
    return;
  }
  // No edits left: the automatic cut-out itself, byte for byte.
  const blob = s.edits.length ? await rgbaPng(s.result, s.width, s.height) : s.card.automatic;
  await keepCorrection(s.card, blob, s.edits, describeEdits(s.edits));
  closeEditor();
}

function closeEditor() {
  const s = session;
  if (!s) return;
  session = null;
  forgetUploads(s);
  const dialog = editorDialog();
  if (dialog.open) dialog.close();
  delete dialog.dataset.state;
  $(".editor-canvas", dialog).width = 0; // a 12 MP canvas holds 48 MB
  $(".editor-overlay", dialog).replaceChildren();
  if (s.card.isConnected) $(".edit", s.card).focus();
}

// Esc: leaves at once where nothing changed, else asks for a second Esc.
function cancelEditing() {
  const s = session;
  if (!s) return;
  const changed = s.edits.length !== (s.card.edits || []).length
    || s.edits.some((edit, i) => edit !== s.card.edits[i]);
  if (changed && !s.escape) {
    s.escape = true;
    say(s, "Press Esc again to leave without these corrections, or Enter to keep them.");
    return;
  }
  closeEditor();
}

// Answers -----------------------------------------------------------------------------------------

function say(s, text) {
  $(".editor-status", editorDialog()).textContent = text;
  if (s) s.said = text;
}

function sayError(text) {
  $(".editor-error", editorDialog()).textContent = text;
}

// After every change of the edits: show what they make, asking the server where needed.
function refresh(s) {
  if (session !== s || !s.photo) return;
  const dialog = editorDialog();
  const key = hintKey(s.edits);
  dialog.dataset.edits = String(s.edits.length);
  dialog.dataset.state = "working";
  updateControls(s);
  drawOverlay(s);
  if (!key) {
    show(s, key, s.automatic);
  } else if (s.answers.has(key)) {
    answerPixels(s, key).then((pixels) => { if (hintKey(s.edits) === key) show(s, key, pixels); });
  } else if (s.halted) {
    say(s, "Not corrected: make a change, or undo, to try again.");
    settle(s);
  } else {
    say(s, `${capitalised(describeEdits(s.edits))}: correcting…`);
    if (!s.pending) fetchAnswer(s, key, s.edits);
  }
}

async function fetchAnswer(s, key, edits) {
  s.pending = key;
  try {
    const ids = await s.ids;
    const { box, points } = hintsOf(edits);
    const body = { cutout_id: ids.cutout, points };
    if (box) body.box = box;
    const result = await request("POST", `/v1/images/${ids.photo}/remove-background`, { json: body });
    let blob;
    try {
      blob = await request("GET", `/v1/images/${result.id}/download`, { responseType: "blob" });
    } finally {
      deleteImage(result.id);
    }
    s.answers.set(key, { blob, pixels: null });
  } catch (error) {
    if (session === s) failed(s, key, error);
  } finally {
    s.pending = null;
    refresh(s); // the edits may have moved on meanwhile
  }
}

// A hint the server refused (outside the photo, too many...) is taken back and its reason
// said; any other failure stops asking until the next change, so that nothing is dropped.
function failed(s, key, error) {
  const why = friendlyError(error);
  const last = s.edits.at(-1);
  if (error instanceof ApiError && [400, 422].includes(error.status) && hintKey(s.edits) === key
      && last && last.kind !== "stroke") {
    s.edits.pop();
    sayError(`That ${last.kind === "box" ? "box" : "click"} was not applied: ${why}`);
  } else {
    s.halted = true;
    sayError(`The cut-out could not be corrected: ${why}`);
  }
}

async function answerPixels(s, key) {
  const answer = s.answers.get(key);
  s.answers.delete(key); // the most recently used last
  s.answers.set(key, answer);
  if (!answer.pixels) {
    const pixels = (await imagePixels(answer.blob)).rgba;
    const decoded = [...s.answers.values()].filter((other) => other.pixels && other !== answer);
    for (const old of decoded.slice(0, Math.max(0, decoded.length + 1 - KEEP_DECODED))) old.pixels = null;
    answer.pixels = pixels;
  }
  return answer.pixels;
}

function show(s, key, pixels) {
  if (session !== s) return;
  s.result = paintStrokes(new Uint8ClampedArray(pixels), s.edits, s.photo, s.width);
  s.shownKey = key;
  s.shownEdits = [...s.edits];
  draw(s);
  editorDialog().dataset.state = "ready";
  say(s, statusLine(s));
  settle(s);
}

function statusLine(s) {
  const note = s.edits.length ? `${capitalised(describeEdits(s.edits))}.` : "The automatic cut-out.";
  return s.original ? `${note} Showing the original photo (V).` : note;
}

function draw(s) {
  const context = $(".editor-canvas", editorDialog()).getContext("2d");
  const pixels = s.original ? s.photo : s.result;
  if (pixels) context.putImageData(new ImageData(pixels, s.width, s.height), 0, 0);
}

// Whether what is shown is what the edits make.
function upToDate(s) {
  const shown = s.shownEdits || [];
  return s.shownKey === hintKey(s.edits) && shown.length === s.edits.length
    && shown.every((edit, i) => edit === s.edits[i]);
}

// Done waits for the answer on its way, if any (or for the failure that stops asking).
function settled(s) {
  if (upToDate(s) || s.halted) return Promise.resolve();
  return new Promise((resolve) => s.waiters.push(resolve));
}

function settle(s) {
  if (!upToDate(s) && !s.halted) return;
  for (const resolve of s.waiters.splice(0)) resolve();
}

// Changes -----------------------------------------------------------------------------------------

function addEdit(s, edit) {
  if (edit.kind === "point" && s.edits.filter((e) => e.kind === "point").length >= MAX_CLICKS) {
    sayError(`At most ${MAX_CLICKS} clicks: undo some, or use the brushes.`);
    return;
  }
  s.edits.push(edit);
  s.undone = [];
  changed(s);
}

function undo(s) {
  if (!s.edits.length) return;
  s.undone.push(s.edits.pop());
  changed(s);
}

function redo(s) {
  if (!s.undone.length) return;
  s.edits.push(s.undone.pop());
  changed(s);
}

function changed(s) {
  s.halted = false;
  s.escape = false;
  sayError("");
  refresh(s);
}

function setTool(s, tool) {
  const dialog = editorDialog();
  const input = $(`input[name=editor-tool][value="${tool}"]`, dialog);
  if (!input) return;
  input.checked = true;
  dialog.dataset.tool = tool;
  if (s) {
    s.tool = tool;
    drawOverlay(s);
  }
}

function setBrush(size) {
  const input = $(".brush", editorDialog());
  input.value = String(Math.round(Math.min(Number(input.max), Math.max(Number(input.min), size))));
  $(".brush-value", editorDialog()).textContent = `${input.value} px`;
  if (session) drawOverlay(session);
}

function brushSize() {
  return Number($(".brush", editorDialog()).value);
}

function toggleOriginal(s) {
  s.original = !s.original;
  $(".before-after", editorDialog()).setAttribute("aria-pressed", String(s.original));
  draw(s);
  if (upToDate(s)) say(s, statusLine(s));
}

function updateControls(s) {
  const dialog = editorDialog();
  $(".undo", dialog).disabled = !s.edits.length;
  $(".redo", dialog).disabled = !s.undone.length;
}

// View: zoom and pan --------------------------------------------------------------------------------

function viewBox() {
  return $(".editor-view", editorDialog()).getBoundingClientRect();
}

function applyView(s) {
  const { z, x, y } = s.view;
  const world = $(".editor-world", editorDialog());
  world.style.transform = `translate(${x}px, ${y}px) scale(${z})`;
  world.classList.toggle("pixelated", z >= 2 && !s.view.fit); // zoomed in to look at pixels
  $(".zoom-value", editorDialog()).textContent = `${Math.round(z * 100)}%`;
  drawOverlay(s);
}

function fitView(s) {
  const box = viewBox();
  const z = Math.min((box.width - 16) / s.width, (box.height - 16) / s.height, EDITOR_ZOOM.max);
  s.view = {
    z: Math.max(EDITOR_ZOOM.min, z),
    x: (box.width - s.width * z) / 2,
    y: (box.height - s.height * z) / 2,
    fit: true,
  };
  applyView(s);
}

// Zoom to `z`, keeping the photo's point under (clientX, clientY) (default: the middle) still.
function zoomTo(s, z, clientX = null, clientY = null) {
  const box = viewBox();
  const cx = (clientX ?? box.left + box.width / 2) - box.left;
  const cy = (clientY ?? box.top + box.height / 2) - box.top;
  const next = Math.min(EDITOR_ZOOM.max, Math.max(EDITOR_ZOOM.min, z));
  const { view } = s;
  const ix = (cx - view.x) / view.z;
  const iy = (cy - view.y) / view.z;
  s.view = { z: next, x: cx - ix * next, y: cy - iy * next, fit: false };
  keepInView(s);
  applyView(s);
}

function zoomStepBy(s, direction) {
  const { z } = s.view;
  const next = direction > 0
    ? ZOOM_STEPS.find((step) => step > z * 1.01) || EDITOR_ZOOM.max
    : [...ZOOM_STEPS].reverse().find((step) => step < z / 1.01) || EDITOR_ZOOM.min;
  zoomTo(s, next);
}

function panBy(s, dx, dy) {
  s.view.x += dx;
  s.view.y += dy;
  s.view.fit = false;
  keepInView(s);
  applyView(s);
}

// Some of the photo always stays in view.
function keepInView(s) {
  const box = viewBox();
  const margin = 48;
  const { view } = s;
  view.x = Math.min(box.width - margin, Math.max(margin - s.width * view.z, view.x));
  view.y = Math.min(box.height - margin, Math.max(margin - s.height * view.z, view.y));
}

// The photo's point (continuous pixels) under a pointer.
function photoPoint(s, event) {
  const box = viewBox();
  return [(event.clientX - box.left - s.view.x) / s.view.z, (event.clientY - box.top - s.view.y) / s.view.z];
}

function pixel(s, [x, y]) {
  return {
    x: Math.min(s.width - 1, Math.max(0, Math.floor(x))),
    y: Math.min(s.height - 1, Math.max(0, Math.floor(y))),
  };
}

// Overlay: the box, the clicks, the stroke being painted, the brush ------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svg(name, attributes) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

function drawOverlay(s) {
  if (!s.photo) return;
  const overlay = $(".editor-overlay", editorDialog());
  const unit = 1 / s.view.z; // one CSS pixel, in the photo's pixels
  const shapes = [];
  const boxShape = (box, live) => {
    const rect = { x: box.x1, y: box.y1, width: box.x2 - box.x1, height: box.y2 - box.y1, fill: "none" };
    shapes.push(svg("rect", { ...rect, stroke: "#1b1f24", "stroke-width": 3 * unit }));
    shapes.push(svg("rect", {
      ...rect, stroke: "#fff", "stroke-width": 1.5 * unit, "stroke-dasharray": `${6 * unit} ${4 * unit}`,
      class: live ? "live" : "box",
    }));
  };
  const { box } = hintsOf(s.edits);
  if (box) boxShape(box, false);
  for (const edit of s.edits) {
    if (edit.kind !== "point") continue;
    const subject = edit.label === "subject";
    const cx = edit.x + 0.5;
    const cy = edit.y + 0.5;
    const r = DOT_RADIUS * unit;
    shapes.push(svg("circle", { cx, cy, r: r + 2 * unit, fill: "#1b1f24" })); // seen on any colour
    shapes.push(svg("circle", {
      cx, cy, r, fill: subject ? "#1a7f37" : "#cf222e", stroke: "#fff", "stroke-width": 2 * unit,
      class: subject ? "dot subject" : "dot background",
    }));
    const arm = r * 0.5;
    shapes.push(svg("path", {
      d: subject ? `M${cx - arm} ${cy}H${cx + arm}M${cx} ${cy - arm}V${cy + arm}` : `M${cx - arm} ${cy}H${cx + arm}`,
      stroke: "#fff", "stroke-width": 2 * unit,
    }));
  }
  const gesture = s.gesture;
  if (gesture?.kind === "box" && gesture.box) boxShape(gesture.box, true);
  if (gesture?.kind === "stroke") {
    const colour = gesture.mode === "erase" ? "rgba(207, 34, 46, 0.5)" : "rgba(26, 127, 55, 0.5)";
    shapes.push(svg("polyline", {
      points: gesture.path.map((p) => p.join(",")).join(" "),
      fill: "none", stroke: colour, "stroke-width": gesture.size, "stroke-linecap": "round", "stroke-linejoin": "round",
    }));
  }
  if (s.hover && (s.tool === "erase" || s.tool === "restore")) {
    const [cx, cy] = s.hover;
    const r = brushSize() / 2;
    shapes.push(svg("circle", { cx, cy, r, fill: "none", stroke: "#1b1f24", "stroke-width": 2.5 * unit }));
    shapes.push(svg("circle", { cx, cy, r, fill: "none", stroke: "#fff", "stroke-width": 1.2 * unit }));
  }
  overlay.replaceChildren(...shapes);
}

// Pointers: mouse, pen and touch alike ------------------------------------------------------------

function panning(s, event) {
  return s.tool === "pan" || s.spaceHeld || event.button === 1;
}

function onPointerDown(event) {
  const s = session;
  if (!s?.photo || (event.button !== 0 && event.button !== 1)) return;
  const view = event.currentTarget;
  view.setPointerCapture(event.pointerId);
  s.pointers.set(event.pointerId, event);
  event.preventDefault();
  if (s.pointers.size === 2) { // a second finger: pinch and pan, whatever the tool
    const [a, b] = [...s.pointers.values()];
    s.gesture = {
      kind: "pinch",
      distance: Math.hypot(a.clientX - b.clientX, a.clientY - b.clientY) || 1,
      mid: [(a.clientX + b.clientX) / 2, (a.clientY + b.clientY) / 2],
      view: { ...s.view },
    };
    drawOverlay(s);
    return;
  }
  if (s.pointers.size > 2) return;
  const at = photoPoint(s, event);
  const start = { clientX: event.clientX, clientY: event.clientY };
  if (panning(s, event)) s.gesture = { kind: "pan", last: start };
  else if (s.tool === "box") s.gesture = { kind: "box", from: at, start, box: null };
  else if (s.tool === "erase" || s.tool === "restore") {
    s.gesture = { kind: "stroke", mode: s.tool, size: brushSize(), path: [at] };
  } else {
    const inverse = event.altKey || event.shiftKey;
    const subject = (s.tool === "add") !== inverse;
    s.gesture = { kind: "click", at, start, last: start, label: subject ? "subject" : "background" };
  }
  view.classList.toggle("grabbing", s.gesture.kind === "pan");
  drawOverlay(s);
}

function onPointerMove(event) {
  const s = session;
  if (!s?.photo) return;
  if (event.pointerType === "mouse") s.hover = photoPoint(s, event);
  if (!s.pointers.has(event.pointerId)) {
    drawOverlay(s);
    return;
  }
  s.pointers.set(event.pointerId, event);
  const gesture = s.gesture;
  if (!gesture) return;
  if (gesture.kind === "pinch") {
    const [a, b] = [...s.pointers.values()];
    const distance = Math.hypot(a.clientX - b.clientX, a.clientY - b.clientY) || 1;
    const mid = [(a.clientX + b.clientX) / 2, (a.clientY + b.clientY) / 2];
    const box = viewBox();
    const before = gesture.view;
    const z = Math.min(EDITOR_ZOOM.max, Math.max(EDITOR_ZOOM.min, before.z * (distance / gesture.distance)));
    const ix = (gesture.mid[0] - box.left - before.x) / before.z;
    const iy = (gesture.mid[1] - box.top - before.y) / before.z;
    s.view = { z, x: mid[0] - box.left - ix * z, y: mid[1] - box.top - iy * z, fit: false };
    keepInView(s);
    applyView(s);
    return;
  }
  const moved = Math.hypot(event.clientX - (gesture.start?.clientX ?? event.clientX),
    event.clientY - (gesture.start?.clientY ?? event.clientY));
  if (gesture.kind === "click" && moved > CLICK_SLOP) {
    s.gesture = { kind: "pan", last: gesture.last }; // a drag with Add or Remove moves the view
    event.currentTarget.classList.add("grabbing");
  }
  if (s.gesture.kind === "pan") {
    panBy(s, event.clientX - s.gesture.last.clientX, event.clientY - s.gesture.last.clientY);
    s.gesture.last = { clientX: event.clientX, clientY: event.clientY };
  } else if (gesture.kind === "box" && moved > CLICK_SLOP) {
    const [x0, y0] = gesture.from;
    const [x1, y1] = photoPoint(s, event);
    gesture.box = {
      x1: Math.max(0, Math.floor(Math.min(x0, x1))),
      y1: Math.max(0, Math.floor(Math.min(y0, y1))),
      x2: Math.min(s.width, Math.ceil(Math.max(x0, x1))),
      y2: Math.min(s.height, Math.ceil(Math.max(y0, y1))),
    };
    drawOverlay(s);
  } else if (gesture.kind === "stroke") {
    const at = photoPoint(s, event);
    const last = gesture.path.at(-1);
    if (Math.hypot(at[0] - last[0], at[1] - last[1]) >= Math.max(0.5, gesture.size / 8)) gesture.path.push(at);
    drawOverlay(s);
  }
}

function onPointerUp(event) {
  const s = session;
  if (!s?.photo || !s.pointers.has(event.pointerId)) return;
  s.pointers.delete(event.pointerId);
  const gesture = s.gesture;
  const finished = event.type === "pointerup" && s.pointers.size === 0;
  if (gesture?.kind === "pinch") {
    s.gesture = s.pointers.size ? { kind: "none" } : null; // the finger left does nothing
    return;
  }
  if (s.pointers.size) return;
  s.gesture = null;
  event.currentTarget.classList.remove("grabbing");
  if (!finished || !gesture) return drawOverlay(s);
  if (gesture.kind === "click") {
    addEdit(s, { kind: "point", ...pixel(s, gesture.at), label: gesture.label });
  } else if (gesture.kind === "box" && gesture.box
      && gesture.box.x2 - gesture.box.x1 >= 2 && gesture.box.y2 - gesture.box.y1 >= 2) {
    addEdit(s, { kind: "box", box: gesture.box });
  } else if (gesture.kind === "stroke") {
    const cover = strokeCover(gesture.path, gesture.size, s.width, s.height);
    addEdit(s, { kind: "stroke", mode: gesture.mode, size: gesture.size, path: gesture.path, cover });
  } else {
    drawOverlay(s);
  }
  return undefined;
}

function onWheel(event) {
  const s = session;
  if (!s?.photo) return;
  event.preventDefault();
  const lines = event.deltaMode === 1 ? 16 : event.deltaMode === 2 ? 400 : 1;
  const delta = event.deltaY * lines;
  zoomTo(s, s.view.z * Math.exp(-delta * (event.ctrlKey ? 0.01 : 0.002)), event.clientX, event.clientY);
}

// Keys --------------------------------------------------------------------------------------------

const TOOL_KEYS = { b: "box", a: "add", r: "remove", e: "erase", s: "restore", h: "pan" };

function onEditorKey(event) {
  const s = session;
  if (!s) return;
  const key = event.key.toLowerCase();
  const command = event.ctrlKey || event.metaKey;
  if (key === "escape") {
    event.preventDefault();
    cancelEditing();
    return;
  }
  if (command && key === "z") {
    event.preventDefault();
    if (event.shiftKey) redo(s);
    else undo(s);
    return;
  }
  if (command && key === "y") {
    event.preventDefault();
    redo(s);
    return;
  }
  if (command || event.altKey) return;
  const onControl = event.target.closest("button, summary, input[type=range]");
  if (key === " ") {
    if (!event.repeat) s.spaceHeld = true;
    $(".editor-view", editorDialog()).classList.add("pan-ready");
    event.preventDefault();
    return;
  }
  if (key === "enter") {
    if (onControl) return;
    event.preventDefault();
    finishEditing();
    return;
  }
  if (onControl?.matches("input[type=range]") && key.startsWith("arrow")) return;
  if (TOOL_KEYS[key]) setTool(s, TOOL_KEYS[key]);
  else if (key === "v") toggleOriginal(s);
  else if (key === "[") setBrush(brushSize() / 1.25);
  else if (key === "]") setBrush(brushSize() * 1.25);
  else if (key === "+" || key === "=") zoomStepBy(s, 1);
  else if (key === "-" || key === "_") zoomStepBy(s, -1);
  else if (key === "0") fitView(s);
  else if (key === "1") zoomTo(s, 1);
  else return;
  event.preventDefault();
}

function onEditorKeyUp(event) {
  if (event.key !== " " || !session) return;
  session.spaceHeld = false;
  $(".editor-view", editorDialog()).classList.remove("pan-ready");
  event.preventDefault(); // a focused button would take the Space as a press
}

// Set-up (once) -----------------------------------------------------------------------------------

function setUpEditor() {
  const dialog = editorDialog();
  const view = $(".editor-view", dialog);
  dialog.dataset.tool = $("input[name=editor-tool]:checked", dialog).value;
  dialog.querySelectorAll("input[name=editor-tool]").forEach((input) =>
    input.addEventListener("change", () => setTool(session, input.value)));
  $(".brush", dialog).addEventListener("input", (event) => setBrush(Number(event.target.value)));
  const withSession = (action) => () => { if (session?.photo) action(session); };
  $(".undo", dialog).addEventListener("click", withSession(undo));
  $(".redo", dialog).addEventListener("click", withSession(redo));
  $(".before-after", dialog).addEventListener("click", withSession(toggleOriginal));
  $(".zoom-in", dialog).addEventListener("click", withSession((s) => zoomStepBy(s, 1)));
  $(".zoom-out", dialog).addEventListener("click", withSession((s) => zoomStepBy(s, -1)));
  $(".zoom-fit", dialog).addEventListener("click", withSession(fitView));
  $(".zoom-one", dialog).addEventListener("click", withSession((s) => zoomTo(s, 1)));
  $(".editor-done", dialog).addEventListener("click", () => finishEditing());
  $(".editor-cancel", dialog).addEventListener("click", () => closeEditor());
  dialog.addEventListener("keydown", onEditorKey);
  dialog.addEventListener("keyup", onEditorKeyUp);
  // Esc is handled above; a close the browser forces (a second Esc, say) discards as Cancel.
  dialog.addEventListener("cancel", (event) => event.preventDefault());
  dialog.addEventListener("close", () => { if (session) closeEditor(); });
  view.addEventListener("pointerdown", onPointerDown);
  view.addEventListener("pointermove", onPointerMove);
  view.addEventListener("pointerup", onPointerUp);
  view.addEventListener("pointercancel", onPointerUp);
  view.addEventListener("pointerleave", () => { if (session) { session.hover = null; drawOverlay(session); } });
  view.addEventListener("wheel", onWheel, { passive: false });
  view.addEventListener("contextmenu", (event) => event.preventDefault());
  view.addEventListener("mousedown", (event) => { if (event.button === 1) event.preventDefault(); }); // no autoscroll
  new ResizeObserver(() => {
    if (!session?.photo) return;
    if (session.view.fit) fitView(session);
    else applyView(session);
  }).observe(view);
  window.addEventListener("pagehide", () => { if (session) forgetUploads(session, true); });
}
