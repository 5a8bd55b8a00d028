// alphacut's web page: plain JavaScript, no build step, nothing loaded from elsewhere.
// It speaks the public images API (the IMG Processing-compatible one) with the user's key:
// upload (or fetch a URL), remove the background, download the cut-out, then delete both
// server copies, so that the photos live on in this tab only.
"use strict";

const KEY_STORAGE = "alphacut.apiKey";
const KEY_SOURCE = "alphacut.apiKeySource"; // "user" (typed in) or "link" (alphacut serve's link)
const PARALLEL = 2; // images processed at once; the server queues and bounds the rest

const $ = (selector, root = document) => root.querySelector(selector);

const state = {
  key: null, keySource: null, queue: [], running: 0, cards: 0, scrollToNext: false, modelChosen: false,
};

// API ----------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, retryAfter, code = null) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
    this.code = code; // the server's error code ("unknown_foreground"...), where it gave one
  }
}

// Errors that can pass by themselves or once a key is set: only these offer "Try again".
// A file that is not an image, too big or refused stays so however often it is sent.
const PASSING = new Set([401, 408, 429, 502, 503, 504]);

function canPass(error) {
  return !(error instanceof ApiError) || PASSING.has(error.status);
}

// The server's messages are sentence fragments ("the image is larger than..."): one sentence.
function sentence(text) {
  const trimmed = String(text || "").trim();
  if (!trimmed) return "";
  const first = trimmed.startsWith("alphacut") ? trimmed : trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

// "unsupported image format (the data is GIF); alphacut accepts JPEG, PNG and WebP" says
// "unsupported" once: "Unsupported format: the file is GIF. alphacut accepts JPEG, PNG and WebP."
function unsupported(message) {
  const parts = /^unsupported image format \((?:the data is )?([^)]*)\);?\s*(.*)$/i.exec(message || "");
  if (!parts) return `Unsupported format: ${sentence(message).replace(/^Unsupported format:?\s*/i, "")}`;
  return `Unsupported format: the file is ${parts[1]}. ${sentence(parts[2])}`.trim();
}

// A photo without a subject (a plain wall, an empty scene) is refused, not answered with an
// empty cut-out. Where only one model looked, the server says another may find one; where
// precise saw nothing but its checker (the fast model) did, it points to auto.
function noSubject(message) {
  const another = /another model may find one/i.test(message || "");
  const tryAuto = /try model auto/i.test(message || "");
  return "No subject found in this photo: nothing in it stands out from the background."
    + (another ? " Precise or Auto may find one." : tryAuto ? " Auto may find one." : "");
}

function friendlyError(error) {
  if (!(error instanceof ApiError)) return "Could not reach the server: is it still running?";
  if (error.code === "unknown_foreground") return noSubject(error.message);
  const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : "";
  switch (error.status) {
    case 401: return "The API key was refused. Set a valid key (button at the top).";
    case 413: return `Too big: ${sentence(error.message)}`;
    case 415: return unsupported(error.message);
    case 429: return `Rate limit reached.${wait}`;
    case 503: return `The server is busy.${wait}`;
    default: return sentence(error.message) || `The server answered ${error.status}.`;
  }
}

async function toApiError(status, text, retryAfter) {
  let message = text;
  let code = null;
  try {
    const body = JSON.parse(text);
    message = body.message || text;
    code = typeof body.code === "string" ? body.code : null;
  } catch (_) { /* not JSON: keep the text */ }
  return new ApiError(status, message, retryAfter, code);
}

function request(method, path, { body, json, onUpload, responseType = "json" } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, path);
    xhr.responseType = responseType === "blob" ? "blob" : "text";
    if (state.key) xhr.setRequestHeader("x-api-key", state.key);
    if (json !== undefined) xhr.setRequestHeader("Content-Type", "application/json");
    if (onUpload) xhr.upload.onprogress = (e) => e.lengthComputable && onUpload(e.loaded / e.total);
    xhr.onerror = () => reject(new TypeError("network"));
    xhr.onload = async () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        if (responseType === "blob") return resolve(xhr.response);
        return resolve(xhr.status === 204 || !xhr.responseText ? null : JSON.parse(xhr.responseText));
      }
      const text = responseType === "blob" ? await xhr.response.text() : xhr.responseText;
      reject(await toApiError(xhr.status, text, xhr.getResponseHeader("Retry-After")));
    };
    xhr.send(json !== undefined ? JSON.stringify(json) : body);
  });
}

// Keys ---------------------------------------------------------------------------------------

function setKey(key, source) {
  state.key = key;
  state.keySource = key ? source : null;
  if (key) {
    localStorage.setItem(KEY_STORAGE, key);
    localStorage.setItem(KEY_SOURCE, source);
  } else {
    localStorage.removeItem(KEY_STORAGE);
    localStorage.removeItem(KEY_SOURCE);
  }
  showKeyStatus(key ? "ok" : "missing");
  if (key) showInstalledModels();
}

// Fast, Precise and Auto are always offered; any other model the server has installed (alphacut
// models install birefnet-general...) is added after them, by name. Precise is chosen unless
// the server's default is auto (and the user has not chosen already).
async function showInstalledModels() {
  let listing;
  try {
    listing = await request("GET", "/v1/models");
  } catch {
    return; // an old server, or a refused key (said elsewhere): the three built-in choices stay
  }
  const fieldset = $("fieldset.model");
  if (listing.default === "auto" && !state.modelChosen) $("input[value=auto]", fieldset).checked = true;
  const targets = new Set(Object.values(listing.aliases || {}));
  for (const model of listing.models || []) {
    if (!model.installed || targets.has(model.name)) continue;
    if (fieldset.querySelector(`input[value="${CSS.escape(model.name)}"]`)) continue;
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "radio";
    input.name = "model";
    input.value = model.name;
    const note = document.createElement("small");
    note.textContent = model.commercial_use ? model.summary : `${model.summary} (${model.licence})`;
    label.append(input, ` ${model.name} `, note);
    fieldset.append(label);
  }
}

// A working key is nobody's concern: the header says nothing of it, only its button (whose
// description still names the key for those who ask). A missing or refused key is said.
function showKeyStatus(status) {
  const label = $("#key-label");
  label.textContent = {
    ok: `Key ${(state.key || "").slice(0, 9)}…${state.keySource === "link" ? " (from link)" : ""}`,
    missing: "No API key",
    refused: "API key refused",
  }[status];
  label.hidden = status === "ok";
  label.classList.toggle("alert", status !== "ok");
  $("#key-button").textContent = status === "ok" ? "API key" : "Set key";
}

// `alphacut serve` prints http://host:port/#key=...: a fragment is never sent to a server (nor
// through a proxy, nor into its logs). Take the key, then take it off the address bar, so that
// it is not bookmarked, shared or left in the tab's history.
function keyFromLink() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (!fragment.has("key")) return null;
  history.replaceState(null, "", location.pathname + location.search);
  return fragment.get("key").trim() || null;
}

function openKeyDialog(message = "") {
  const dialog = $("#key-dialog");
  $("#key-input").value = state.keySource === "user" ? state.key : "";
  $("#key-error").textContent = message;
  if (!dialog.open) dialog.showModal();
  $("#key-input").focus();
}

function setUpKeyDialog() {
  const dialog = $("#key-dialog");
  $("#key-button").addEventListener("click", () => openKeyDialog());
  $("#key-cancel").addEventListener("click", () => dialog.close());
  $("#key-forget").addEventListener("click", () => {
    setKey(null);
    openKeyDialog();
  });
  $("#key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const candidate = $("#key-input").value.trim();
    const previous = [state.key, state.keySource];
    setKey(candidate, "user");
    try {
      await request("GET", "/v1/images?take=1");
      dialog.close();
      // Cards that failed for want of a key go again with this one.
      document.querySelectorAll('.card[data-state="error"][data-status="401"] .retry')
        .forEach((button) => button.click());
    } catch (error) {
      setKey(...previous);
      $("#key-error").textContent = friendlyError(error);
    }
  });
}

// Cards --------------------------------------------------------------------------------------

function createCard(title) {
  const card = $("#card-template").content.firstElementChild.cloneNode(true);
  const id = ++state.cards;
  card.querySelectorAll(".view input").forEach((input) => { input.name = `view-${id}`; });
  card.querySelectorAll(".background input[type=radio]").forEach((input) => { input.name = `bg-${id}`; });
  $(".card-title", card).textContent = title;
  $("#results").prepend(card);

  const compare = $(".compare", card);
  const stage = $(".stage", card);
  const setSplit = (percent) => {
    const value = Math.min(100, Math.max(0, percent));
    compare.value = String(Math.round(value));
    card.style.setProperty("--split", `${value}%`);
  };
  compare.addEventListener("input", () => setSplit(Number(compare.value)));
  setUpDrag(card, stage, setSplit);
  stage.addEventListener("dblclick", (event) => toggleZoom(card, event));
  $(".zoom", card).addEventListener("click", () => toggleZoom(card));
  $(".before", card).addEventListener("load", () => setRatio(card, $(".before", card)));

  card.querySelectorAll(".view input").forEach((input) =>
    input.addEventListener("change", () => showView(card, input.value)));
  card.querySelectorAll(".background input").forEach((input) =>
    input.addEventListener("input", () => applyBackground(card)));
  card.querySelectorAll(".downloads button").forEach((button) =>
    button.addEventListener("click", () => download(card, button.dataset.format)));
  $(".dismiss", card).addEventListener("click", () => removeCard(card));
  updateBatch();
  return card;
}

function removeCard(card) {
  for (const url of [card.dataset.beforeUrl, card.dataset.cutUrl]) if (url) URL.revokeObjectURL(url);
  card.remove();
  updateBatch();
}

// Drag anywhere on the image to move the before/after divider (on a phone, a sideways drag:
// an upright one still scrolls the page). Zoomed in, a drag pans and only the knob moves it.
function setUpDrag(card, stage, setSplit) {
  let dragging = false;
  const follow = (event) => {
    const box = stage.getBoundingClientRect();
    setSplit(((event.clientX - box.left) / box.width) * 100);
  };
  stage.addEventListener("pointerdown", (event) => {
    if (card.dataset.state !== "done" || event.button !== 0) return;
    if (card.classList.contains("zoomed") && !event.target.closest(".knob")) return;
    dragging = true;
    stage.setPointerCapture(event.pointerId);
    follow(event);
    event.preventDefault();
  });
  stage.addEventListener("pointermove", (event) => { if (dragging) follow(event); });
  for (const name of ["pointerup", "pointercancel"]) {
    stage.addEventListener(name, () => { dragging = false; });
  }
}

function setRatio(card, image) {
  if (!image.naturalWidth || !image.naturalHeight) return;
  card.style.setProperty("--ratio", String(image.naturalWidth / image.naturalHeight));
  card.style.setProperty("--natural-width", String(image.naturalWidth));
}

// Fit (the whole image in the window) or 100% (one image pixel per CSS pixel, scrolled so
// that the point double-clicked stays under the pointer).
function toggleZoom(card, event = null) {
  if (card.dataset.state !== "done") return;
  const viewer = $(".viewer", card);
  const stage = $(".stage", card);
  const box = stage.getBoundingClientRect();
  const at = event
    ? { x: (event.clientX - box.left) / box.width, y: (event.clientY - box.top) / box.height }
    : { x: 0.5, y: 0.5 };
  const zoomed = card.classList.toggle("zoomed");
  const button = $(".zoom", card);
  button.setAttribute("aria-pressed", String(zoomed));
  button.textContent = zoomed ? "Fit to window" : "Zoom to 100%";
  if (zoomed) {
    const view = viewer.getBoundingClientRect();
    const offsetX = event ? event.clientX - view.left : view.width / 2;
    const offsetY = event ? event.clientY - view.top : view.height / 2;
    viewer.scrollLeft = at.x * stage.offsetWidth - offsetX;
    viewer.scrollTop = at.y * stage.offsetHeight - offsetY;
  }
}

function setStatus(card, text, progress = null) {
  $(".card-status", card).textContent = text;
  const bar = $(".card-progress", card);
  if (progress === null) bar.removeAttribute("value");
  else bar.value = Math.round(progress * 100);
}

// How sure the server is of a cut-out, in words: its confidence is the estimated overlap
// (IoU) of the cut-out with a mask drawn by hand; under the server's threshold it is doubtful.
// Images made otherwise (an old server, a model without an estimate) say nothing.
function showQuality(card, result) {
  const quality = $(".quality", card);
  quality.replaceChildren();
  quality.removeAttribute("title");
  delete card.dataset.quality;
  const confidence = typeof result?.confidence === "number" ? result.confidence : null;
  if (confidence === null) return;
  const score = confidence.toFixed(2);
  const meaning = "Confidence is the estimated overlap of this cut-out with a mask drawn by hand "
    + "(1.00: a perfect match).";
  const mark = (symbol) => {
    const span = document.createElement("span");
    span.className = "quality-mark";
    span.setAttribute("aria-hidden", "true");
    span.textContent = symbol;
    return span;
  };
  if (result.doubtful === true) {
    card.dataset.quality = "doubtful";
    const badge = document.createElement("strong");
    badge.className = "badge";
    badge.append(mark("⚠"), " Doubtful: check this cut-out");
    const why = document.createElement("small");
    why.className = "quality-why";
    why.textContent = `Confidence ${score}: its estimated overlap with a hand-made mask is below `
      + "this server's threshold.";
    quality.append(badge, " ", why);
    quality.title = `${meaning} ${score} is below this server's threshold for doubtful cut-outs: `
      + "look at the edges before using it.";
  } else if (result.doubtful === false) {
    card.dataset.quality = "good";
    quality.append(mark("✓"), ` Looks good · confidence ${score}`);
    quality.title = `${meaning} ${score} is not below this server's threshold for doubtful cut-outs.`;
  } else {
    quality.append(`Confidence ${score}`);
    quality.title = meaning;
  }
}

function fail(card, error) {
  card.dataset.state = "error";
  card.dataset.status = error instanceof ApiError ? String(error.status) : "network";
  if (error instanceof ApiError && error.code) card.dataset.code = error.code;
  setStatus(card, "Failed");
  $(".error", card).textContent = friendlyError(error);
  $(".retry", card).hidden = !canPass(error);
  updateBatch();
  if (error instanceof ApiError && error.status === 401) {
    showKeyStatus(state.key ? "refused" : "missing");
    if (!state.key) openKeyDialog("The page needs an API key to remove backgrounds.");
    else {
      openKeyDialog(state.keySource === "link"
        ? "The server refused the key of its link: it has been restarted since. "
          + "Open the link it printed this time, or enter a key."
        : "The server refused the key.");
    }
  }
}

function currentView(card) {
  return $(".view input:checked", card).value;
}

// The colour controls do something only for a cut-out, and the picker only with "Colour".
function applyBackground(card) {
  const mask = currentView(card) === "mask";
  const solid = $(".background input[value=color]", card).checked;
  const colour = $(".background input[type=color]", card);
  $(".background", card).disabled = mask;
  colour.disabled = mask || !solid;
  const after = $(".after", card);
  after.classList.toggle("checker", !solid && !mask);
  after.style.backgroundColor = solid && !mask ? colour.value : "";
}

function showView(card, view) {
  const mask = $(".mask", card);
  if (view === "mask") drawMask(card);
  mask.hidden = view !== "mask";
  $(".cut", card).hidden = view === "mask";
  $(".downloads", card).setAttribute("aria-label",
    view === "mask" ? "Download the mask at full resolution" : "Download at full resolution");
  applyBackground(card);
}

// The mask is the cut-out's alpha channel, drawn once in grey.
function maskAlpha(card) {
  if (card.maskAlpha) return card.maskAlpha;
  const cut = $(".cut", card);
  const canvas = document.createElement("canvas");
  canvas.width = cut.naturalWidth;
  canvas.height = cut.naturalHeight;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(cut, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const alpha = new Uint8Array(canvas.width * canvas.height);
  for (let i = 0; i < alpha.length; i += 1) alpha[i] = data[i * 4 + 3];
  card.maskAlpha = alpha;
  return alpha;
}

function drawMask(card) {
  if (card.dataset.maskReady) return;
  const cut = $(".cut", card);
  const canvas = $(".mask", card);
  canvas.width = cut.naturalWidth;
  canvas.height = cut.naturalHeight;
  const alpha = maskAlpha(card);
  const context = canvas.getContext("2d");
  const pixels = context.createImageData(canvas.width, canvas.height);
  const data = pixels.data;
  for (let i = 0; i < alpha.length; i += 1) {
    data[i * 4] = alpha[i]; data[i * 4 + 1] = alpha[i]; data[i * 4 + 2] = alpha[i]; data[i * 4 + 3] = 255;
  }
  context.putImageData(pixels, 0, 0);
  card.dataset.maskReady = "1";
}

// Batch: how many, and what can be done with all of them.
function updateBatch() {
  const cards = [...document.querySelectorAll("#results .card")];
  const done = cards.filter((card) => card.dataset.state === "done").length;
  const failed = cards.filter((card) => card.dataset.state === "error").length;
  $("#empty").hidden = cards.length > 0;
  document.body.classList.toggle("has-results", cards.length > 0);
  $("#batch").hidden = cards.length < 2;
  $("#download-all").disabled = done === 0;
  const parts = [`${cards.length} images`, `${done} done`];
  if (failed) parts.push(`${failed} failed`);
  $("#batch-count").textContent = parts.join(", ");
  // Several photos: how many of their cut-outs want a look (said only when some do).
  const doubtful = cards.filter((card) => card.dataset.state === "done" && card.dataset.quality === "doubtful").length;
  $("#doubtful-summary").textContent = cards.length > 1 && doubtful
    ? `${doubtful} of ${done} ${done === 1 ? "cut-out" : "cut-outs"} ${doubtful === 1 ? "looks" : "look"} doubtful`
    : "";
}

// Processing ---------------------------------------------------------------------------------

function selectedModel() {
  return document.querySelector("input[name=model]:checked").value;
}

function enqueue(card, run) {
  state.queue.push({ card, run });
  pump();
}

function pump() {
  while (state.running < PARALLEL && state.queue.length) {
    const job = state.queue.shift();
    if (!job.card.isConnected) continue; // removed (or cleared) while it waited
    state.running += 1;
    job.run().finally(() => { state.running -= 1; pump(); });
  }
}

function addFile(file) {
  const card = createCard(file.name || "pasted image");
  card.dataset.beforeUrl = URL.createObjectURL(file);
  // A file the browser cannot show (not an image) gets no broken preview, only its error.
  $(".before", card).onerror = () => { $(".viewer", card).hidden = true; };
  $(".before", card).src = card.dataset.beforeUrl;
  $(".before", card).alt = `Original: ${file.name || "pasted image"}`;
  const model = selectedModel();
  const run = () => process(card, model, (onUpload) => {
    const form = new FormData();
    form.append("name", (file.name || "image").slice(0, 30));
    form.append("image", file);
    return request("POST", "/v1/images/upload", { body: form, onUpload });
  });
  $(".retry", card).onclick = () => { resetCard(card); enqueue(card, run); };
  setStatus(card, "Waiting…", 0);
  enqueue(card, run);
}

function addUrl(url) {
  const card = createCard(url);
  const model = selectedModel();
  const name = (url.split("/").pop() || "image").split("?")[0].slice(0, 30) || "image";
  const run = () => process(card, model, () => request("POST", "/v1/images", { json: { name, url } }), true);
  $(".retry", card).onclick = () => { resetCard(card); enqueue(card, run); };
  setStatus(card, "Waiting…", 0);
  enqueue(card, run);
}

function resetCard(card) {
  card.dataset.state = "working";
  delete card.dataset.status;
  delete card.dataset.code;
  showQuality(card, null);
  $(".error", card).textContent = "";
  $(".retry", card).hidden = true;
  setStatus(card, "Waiting…", 0);
  updateBatch();
}

// The first result of what was just added scrolls into view (on a phone it is below the fold).
function reveal(card) {
  if (!state.scrollToNext) return;
  state.scrollToNext = false;
  const box = card.getBoundingClientRect();
  if (box.top >= 0 && box.bottom <= window.innerHeight) return;
  const still = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  card.scrollIntoView({ block: "start", behavior: still ? "auto" : "smooth" });
}

async function process(card, model, create, needsOriginal = false) {
  const created = [];
  try {
    if (!state.key) throw new ApiError(401, "no key");
    setStatus(card, "Uploading…", 0);
    const source = await create((fraction) => setStatus(card, "Uploading…", fraction));
    created.push(source.id);
    if (needsOriginal) {
      const original = await request("GET", `/v1/images/${source.id}/download`, { responseType: "blob" });
      card.dataset.beforeUrl = URL.createObjectURL(original);
      $(".before", card).src = card.dataset.beforeUrl;
    }
    setStatus(card, `Removing the background (${model})…`, null);
    const result = await request("POST", `/v1/images/${source.id}/remove-background`, { json: { model } });
    created.push(result.id);
    setStatus(card, "Fetching the result…", null);
    const blob = await request("GET", `/v1/images/${result.id}/download`, { responseType: "blob" });
    if (!card.isConnected) return;
    card.dataset.cutUrl = URL.createObjectURL(blob);
    card.cutBlob = blob;
    const cut = $(".cut", card);
    cut.alt = `Cut-out of ${$(".card-title", card).textContent}`;
    await new Promise((resolve, reject) => {
      cut.onload = resolve;
      cut.onerror = () => reject(new ApiError(500, "the result could not be displayed"));
      cut.src = card.dataset.cutUrl;
    });
    setRatio(card, cut);
    card.dataset.state = "done";
    card.dataset.width = String(result.width);
    card.dataset.height = String(result.height);
    setStatus(card, `Done: ${result.width}×${result.height}`);
    showQuality(card, result);
    updateBatch();
    reveal(card);
  } catch (error) {
    fail(card, error);
  } finally {
    // The page keeps its copies; the server's are deleted (best effort).
    for (const id of created) request("DELETE", `/v1/images/${id}`).catch(() => {});
  }
}

// Downloads ----------------------------------------------------------------------------------

function baseName(card) {
  return ($(".card-title", card).textContent.split("/").pop() || "image")
    .replace(/\.[A-Za-z0-9]+$/, "").replace(/[^A-Za-z0-9._-]+/g, "_") || "image";
}

// A browser that cannot write a type gives a PNG instead (Safari for WebP): refuse that.
function canvasBlob(canvas, type, quality) {
  return new Promise((resolve, reject) => canvas.toBlob((blob) => {
    if (!blob) reject(new Error("the image could not be encoded"));
    else if (blob.type !== type) reject(new Error(`this browser cannot write ${type}; use PNG`));
    else resolve(blob);
  }, type, quality));
}

// What a card shows, as a lossless PNG at full resolution: the mask (8-bit grey, as the
// command line's --mask writes it), the cut-out on its colour, or the server's cut-out itself.
async function shownPng(card) {
  if (currentView(card) === "mask") {
    const cut = $(".cut", card);
    return greyPng(maskAlpha(card), cut.naturalWidth, cut.naturalHeight);
  }
  if (!$(".background input[value=color]", card).checked) return card.cutBlob;
  return canvasBlob(composite(card, $(".background input[type=color]", card).value), "image/png");
}

function composite(card, background) {
  const source = currentView(card) === "mask" ? (drawMask(card), $(".mask", card)) : $(".cut", card);
  const canvas = document.createElement("canvas");
  canvas.width = source.naturalWidth || source.width;
  canvas.height = source.naturalHeight || source.height;
  const context = canvas.getContext("2d");
  if (background) {
    context.fillStyle = background;
    context.fillRect(0, 0, canvas.width, canvas.height);
  }
  context.drawImage(source, 0, 0);
  return canvas;
}

async function download(card, format) {
  const mask = currentView(card) === "mask";
  const name = `${baseName(card)}-${mask ? "mask" : "cutout"}`;
  const extension = { png: "png", webp: "webp", jpeg: "jpg" }[format];
  const buttons = card.querySelectorAll(".downloads button");
  const note = $(".download-status", card);
  buttons.forEach((button) => { button.disabled = true; });
  note.textContent = "";
  try {
    let blob;
    if (format === "png") blob = await shownPng(card);
    else {
      // The browser encodes these, lossy at any quality (Chromium's WebP at 1.0 too; the page
      // says so beside the buttons). JPEG has no transparency: the cut-out goes on its colour,
      // or on white. The images API's `convert` is no better: its WebP is always lossy (at
      // quality 90 unless told otherwise).
      const solid = !mask && $(".background input[value=color]", card).checked;
      const colour = solid ? $(".background input[type=color]", card).value : null;
      const background = format === "jpeg" ? colour || "#ffffff" : colour;
      blob = await canvasBlob(composite(card, background), `image/${format}`, format === "webp" ? 1.0 : 0.92);
    }
    save(blob, `${name}.${extension}`);
    note.textContent = "";
  } catch (error) {
    const why = error instanceof ApiError ? friendlyError(error) : error.message;
    note.textContent = `The ${format.toUpperCase()} could not be made: ${why}`;
  } finally {
    buttons.forEach((button) => { button.disabled = false; });
  }
}

function save(blob, filename) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

async function downloadAll() {
  const button = $("#download-all");
  const cards = [...document.querySelectorAll('#results .card[data-state="done"]')].reverse();
  button.disabled = true;
  try {
    const used = new Set();
    const files = [];
    for (const card of cards) {
      const stem = `${baseName(card)}-${currentView(card) === "mask" ? "mask" : "cutout"}`;
      let name = `${stem}.png`;
      for (let n = 2; used.has(name); n += 1) name = `${stem}-${n}.png`;
      used.add(name);
      files.push({ name, data: new Uint8Array(await (await shownPng(card)).arrayBuffer()) });
    }
    save(zipStored(files), "alphacut-cutouts.zip");
  } finally {
    updateBatch();
  }
}

function clearAll() {
  state.queue = [];
  document.querySelectorAll("#results .card").forEach(removeCard);
}

// Encoders -----------------------------------------------------------------------------------

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n += 1) {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes, crc = 0) {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i += 1) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

// A ZIP of stored (uncompressed) entries: PNG and WebP are compressed already. No ZIP64, so
// the archive must stay under 4 GiB, far above what a tab holds.
function zipStored(files) {
  const encoder = new TextEncoder();
  const parts = [];
  const central = [];
  let offset = 0;
  const now = new Date();
  const time = (now.getHours() << 11) | (now.getMinutes() << 5) | (now.getSeconds() >> 1);
  const date = ((now.getFullYear() - 1980) << 9) | ((now.getMonth() + 1) << 5) | now.getDate();
  for (const file of files) {
    const name = encoder.encode(file.name);
    const crc = crc32(file.data);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true);
    local.setUint16(6, 0x0800, true); // names in UTF-8
    local.setUint16(8, 0, true); // stored
    local.setUint16(10, time, true);
    local.setUint16(12, date, true);
    local.setUint32(14, crc, true);
    local.setUint32(18, file.data.length, true);
    local.setUint32(22, file.data.length, true);
    local.setUint16(26, name.length, true);
    local.setUint16(28, 0, true);
    parts.push(local, name, file.data);
    const entry = new DataView(new ArrayBuffer(46));
    entry.setUint32(0, 0x02014b50, true);
    entry.setUint16(4, 20, true);
    entry.setUint16(6, 20, true);
    entry.setUint16(8, 0x0800, true);
    entry.setUint16(10, 0, true);
    entry.setUint16(12, time, true);
    entry.setUint16(14, date, true);
    entry.setUint32(16, crc, true);
    entry.setUint32(20, file.data.length, true);
    entry.setUint32(24, file.data.length, true);
    entry.setUint16(28, name.length, true);
    entry.setUint32(42, offset, true); // the other fields (extra, comment, attributes) are 0
    central.push(entry, name);
    offset += 30 + name.length + file.data.length;
  }
  const centralSize = central.reduce((sum, part) => sum + part.byteLength, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, files.length, true);
  end.setUint16(10, files.length, true);
  end.setUint32(12, centralSize, true);
  end.setUint32(16, offset, true);
  return new Blob([...parts, ...central, end], { type: "application/zip" });
}

function pngChunk(type, data) {
  const head = new DataView(new ArrayBuffer(8));
  head.setUint32(0, data.length);
  const typed = new TextEncoder().encode(type);
  new Uint8Array(head.buffer).set(typed, 4);
  const tail = new DataView(new ArrayBuffer(4));
  tail.setUint32(0, crc32(data, crc32(typed)));
  return [head, data, tail];
}

// An 8-bit greyscale PNG (what a canvas cannot write: it always writes RGBA), deflated by the
// browser's CompressionStream; each row "Sub"-filtered, which turns a mask's flat runs to zeros.
async function greyPng(grey, width, height) {
  const rows = new Uint8Array((width + 1) * height);
  for (let y = 0; y < height; y += 1) {
    const row = y * (width + 1);
    const from = y * width;
    rows[row] = 1;
    rows[row + 1] = grey[from];
    for (let x = 1; x < width; x += 1) rows[row + 1 + x] = (grey[from + x] - grey[from + x - 1]) & 0xff;
  }
  const deflated = new Uint8Array(
    await new Response(new Blob([rows]).stream().pipeThrough(new CompressionStream("deflate"))).arrayBuffer());
  const header = new DataView(new ArrayBuffer(13));
  header.setUint32(0, width);
  header.setUint32(4, height);
  header.setUint8(8, 8); // bit depth
  header.setUint8(9, 0); // greyscale; compression, filter and interlace 0
  const signature = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return new Blob([
    signature,
    ...pngChunk("IHDR", new Uint8Array(header.buffer)),
    ...pngChunk("IDAT", deflated),
    ...pngChunk("IEND", new Uint8Array(0)),
  ], { type: "image/png" });
}

// Intake -------------------------------------------------------------------------------------

function addFiles(files) {
  if (files.length) state.scrollToNext = true;
  for (const file of files) addFile(file);
}

function setUpIntake() {
  const zone = $("#dropzone");
  const input = $("#file-input");
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      input.click();
    }
  });
  input.addEventListener("change", () => { addFiles(input.files); input.value = ""; });
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => { event.preventDefault(); zone.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    zone.addEventListener(name, () => zone.classList.remove("over"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    addFiles(event.dataTransfer.files);
  });
  document.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files || [])];
    if (files.length) addFiles(files);
  });
  $("#url-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const field = $("#url-input");
    state.scrollToNext = true;
    addUrl(field.value.trim());
    field.value = "";
  });
}

function start() {
  setUpKeyDialog();
  setUpIntake();
  $("#download-all").addEventListener("click", downloadAll);
  $("#clear-all").addEventListener("click", clearAll);
  $("fieldset.model").addEventListener("change", () => { state.modelChosen = true; });
  const linked = keyFromLink();
  const stored = localStorage.getItem(KEY_STORAGE);
  if (linked) setKey(linked, "link");
  else if (stored) setKey(stored, localStorage.getItem(KEY_SOURCE) === "user" ? "user" : "link");
  else openKeyDialog();
}

start();
