// alphacut's web page: plain JavaScript, no build step, nothing loaded from elsewhere.
// It speaks the public images API (the IMG Processing-compatible one) with the user's key:
// upload (or fetch a URL), remove the background, download the cut-out, then delete both
// server copies, so that the photos live on in this tab only (the editor, editor.js, puts a
// photo back on the server while it corrects its cut-out). files.js writes the PNGs and ZIPs.
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

const ZOOM_LEVELS = [1, 2, 4, 8]; // image pixels to CSS pixels, beyond "fit"

function createCard(title) {
  const card = $("#card-template").content.firstElementChild.cloneNode(true);
  const id = ++state.cards;
  card.querySelectorAll(".view input").forEach((input) => { input.name = `view-${id}`; });
  card.querySelectorAll(".background input[type=radio]").forEach((input) => { input.name = `bg-${id}`; });
  $(".card-title", card).textContent = title;
  $(".open-name", card).textContent = title;
  card.zoom = "fit";
  $("#results").prepend(card);

  const compare = $(".compare", card);
  const stage = $(".stage", card);
  compare.addEventListener("input", () => setSplit(card, Number(compare.value)));
  setUpDrag(card, stage);
  stage.addEventListener("dblclick", (event) => zoomStep(card, event));
  $(".zoom", card).addEventListener("change", (event) => {
    setZoom(card, event.target.value === "fit" ? "fit" : Number(event.target.value));
  });
  $(".compare-toggle", card).addEventListener("click", () => setComparing(card, !card.classList.contains("comparing")));
  new ResizeObserver(() => showFitScale(card)).observe($(".viewer", card));
  $(".before", card).addEventListener("load", () => setRatio(card, $(".before", card)));

  card.querySelectorAll(".view input").forEach((input) =>
    input.addEventListener("change", () => showView(card, input.value)));
  card.querySelectorAll(".background input").forEach((input) =>
    input.addEventListener("input", () => applyBackground(card)));
  card.querySelectorAll(".downloads button").forEach((button) =>
    button.addEventListener("click", () => download(card, button.dataset.format)));
  card.querySelectorAll(".rerun button").forEach((button) =>
    button.addEventListener("click", () => rerun(card, button.dataset.model)));
  $(".edit", card).addEventListener("click", () => openEditor(card));
  $(".open", card).addEventListener("click", () => openCard(card));
  $(".back", card).addEventListener("click", () => closeCard(card));
  $(".dismiss", card).addEventListener("click", () => removeCard(card));
  updateBatch();
  return card;
}

function removeCard(card) {
  for (const url of [card.dataset.beforeUrl, card.dataset.cutUrl]) if (url) URL.revokeObjectURL(url);
  card.remove();
  updateBatch();
}

// A result opens on the cut-out alone. "Compare" puts the original on the left of a divider
// (at the middle), which a drag on the image moves (on a phone a sideways drag: an upright
// one still scrolls the page), as do the arrow keys on its slider.
function setSplit(card, percent) {
  const value = Math.min(100, Math.max(0, percent));
  $(".compare", card).value = String(Math.round(value));
  card.style.setProperty("--split", `${value}%`);
}

function setComparing(card, on) {
  card.classList.toggle("comparing", on);
  $(".compare-toggle", card).setAttribute("aria-pressed", String(on));
  $(".compare", card).disabled = !on;
  setSplit(card, on ? 50 : 0);
}

// Comparing, a drag moves the divider (zoomed in, only a drag on its knob). Zoomed in, any
// other drag with a mouse pans the image (a finger pans it natively).
function setUpDrag(card, stage) {
  let mode = null;
  let last = null;
  const viewer = $(".viewer", card);
  const follow = (event) => {
    const box = stage.getBoundingClientRect();
    setSplit(card, ((event.clientX - box.left) / box.width) * 100);
  };
  stage.addEventListener("pointerdown", (event) => {
    if (card.dataset.state !== "done" || event.button !== 0 || isTile(card)) return;
    const zoomed = card.classList.contains("zoomed");
    if (card.classList.contains("comparing") && (!zoomed || event.target.closest(".knob"))) mode = "compare";
    else if (zoomed && event.pointerType === "mouse") mode = "pan";
    else return;
    last = event;
    stage.setPointerCapture(event.pointerId);
    if (mode === "compare") follow(event);
    event.preventDefault();
  });
  stage.addEventListener("pointermove", (event) => {
    if (mode === "compare") follow(event);
    else if (mode === "pan") {
      viewer.scrollLeft -= event.clientX - last.clientX;
      viewer.scrollTop -= event.clientY - last.clientY;
      last = event;
    }
  });
  for (const name of ["pointerup", "pointercancel"]) {
    stage.addEventListener(name, () => { mode = null; });
  }
}

function setRatio(card, image) {
  if (!image.naturalWidth || !image.naturalHeight) return;
  card.style.setProperty("--ratio", String(image.naturalWidth / image.naturalHeight));
  card.style.setProperty("--natural-width", String(image.naturalWidth));
  showFitScale(card);
}

// How large "Fit" shows the photo (an 850 px photo may fit at 118%: 100% is then smaller).
function fitScale(card) {
  const natural = $(".cut", card).naturalWidth || $(".before", card).naturalWidth;
  return card.zoom === "fit" && natural ? $(".stage", card).offsetWidth / natural : card.fitScale || 1;
}

function showFitScale(card) {
  if (card.zoom !== "fit" || !$(".stage", card).offsetWidth) return;
  card.fitScale = fitScale(card);
  $(".zoom option[value=fit]", card).textContent = `Fit (${Math.round(card.fitScale * 100)}%)`;
}

// Fit (the whole image in the window) or a zoom level (image pixels per CSS pixel, pixels
// drawn square above 100%), keeping the point under the pointer (or the middle) in place.
function setZoom(card, level, event = null) {
  const viewer = $(".viewer", card);
  const stage = $(".stage", card);
  const box = stage.getBoundingClientRect();
  const view = viewer.getBoundingClientRect();
  const pointX = event ? event.clientX : view.left + view.width / 2;
  const pointY = event ? event.clientY : view.top + view.height / 2;
  const at = { x: (pointX - box.left) / box.width, y: (pointY - box.top) / box.height };
  showFitScale(card);
  card.zoom = level;
  $(".zoom", card).value = String(level);
  card.classList.toggle("zoomed", level !== "fit");
  card.classList.toggle("magnified", level !== "fit" && level > 1);
  card.style.setProperty("--zoom", String(level === "fit" ? 1 : level));
  if (level !== "fit") {
    viewer.scrollLeft = at.x * stage.offsetWidth - (pointX - view.left);
    viewer.scrollTop = at.y * stage.offsetHeight - (pointY - view.top);
  }
}

// Double-click: from fit to the first level that shows more, and back to fit.
function zoomStep(card, event) {
  if (card.dataset.state !== "done" || isTile(card)) return;
  if (card.zoom !== "fit") return setZoom(card, "fit", event);
  const scale = fitScale(card);
  return setZoom(card, ZOOM_LEVELS.find((level) => level > scale * 1.05) || ZOOM_LEVELS.at(-1), event);
}

// Several results are a grid of thumbnails; one opens at full size, in the grid's place.
function isTile(card) {
  return $("#results").classList.contains("grid") && !card.classList.contains("open");
}

function openCard(card) {
  document.querySelectorAll("#results .card.open").forEach((other) => { if (other !== card) closeCard(other, false); });
  card.classList.add("open");
  const still = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  card.scrollIntoView({ block: "start", behavior: still ? "auto" : "smooth" });
  $(".back", card).focus({ preventScroll: true });
}

function closeCard(card, focus = true) {
  if (card.zoom !== "fit") setZoom(card, "fit");
  card.classList.remove("open");
  if (focus && card.isConnected) {
    card.scrollIntoView({ block: "nearest" });
    $(".open", card).focus({ preventScroll: true });
  }
}

// The result to edit with the E key: the one holding the focus, the open one, or the only one.
function cardToEdit(target) {
  const done = [...document.querySelectorAll('#results .card[data-state="done"]')];
  const focused = target instanceof Element ? target.closest('.card[data-state="done"]') : null;
  return focused || done.find((card) => card.classList.contains("open")) || (done.length === 1 ? done[0] : null);
}

function showRerun(card) {
  card.querySelectorAll(".rerun button").forEach((button) => {
    button.hidden = button.dataset.model === card.dataset.model;
    button.setAttribute("aria-label", `Re-run with ${button.dataset.model}`);
  });
  $(".rerun", card).hidden = !card.original;
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
  const grid = cards.length > 1;
  $("#results").classList.toggle("grid", grid);
  if (!grid) cards.forEach((card) => card.classList.remove("open"));
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

function upload(blob, name, onUpload) {
  const form = new FormData();
  form.append("name", (name || "image").slice(0, 30));
  form.append("image", blob, name || "image");
  return request("POST", "/v1/images/upload", { body: form, onUpload });
}

// Runs `run` now (in the queue) and again on "Try again".
function schedule(card, run) {
  $(".retry", card).onclick = () => { resetCard(card); enqueue(card, run); };
  setStatus(card, "Waiting…", 0);
  enqueue(card, run);
}

function addFile(file) {
  const card = createCard(file.name || "pasted image");
  card.original = file;
  card.dataset.beforeUrl = URL.createObjectURL(file);
  // A file the browser cannot show (not an image) gets no broken preview, only its error.
  $(".before", card).onerror = () => { $(".viewer", card).hidden = true; };
  $(".before", card).src = card.dataset.beforeUrl;
  $(".before", card).alt = `Original: ${file.name || "pasted image"}`;
  const model = selectedModel();
  schedule(card, () => process(card, model, (onUpload) => upload(file, file.name, onUpload)));
}

function addUrl(url) {
  const card = createCard(url);
  const model = selectedModel();
  const name = (url.split("/").pop() || "image").split("?")[0].slice(0, 30) || "image";
  schedule(card, () => process(card, model, () => request("POST", "/v1/images", { json: { name, url } }), true));
}

// The same photo (kept in the page) through another model: a new automatic cut-out, which
// the corrections made on the old one do not carry over to.
function rerun(card, model) {
  if (!card.original) return;
  const name = $(".card-title", card).textContent.split("/").pop();
  resetCard(card);
  schedule(card, () => process(card, model, (onUpload) => upload(card.original, name, onUpload)));
}

function resetCard(card) {
  card.dataset.state = "working";
  delete card.dataset.status;
  delete card.dataset.code;
  showQuality(card, null);
  $(".error", card).textContent = "";
  $(".retry", card).hidden = true;
  if (card.zoom !== "fit") setZoom(card, "fit");
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

// A cut-out (the server's, or one corrected in the editor) becomes what the card shows and
// downloads; the mask view is drawn again from it.
async function showCutout(card, blob) {
  const previous = card.dataset.cutUrl;
  card.dataset.cutUrl = URL.createObjectURL(blob);
  card.cutBlob = blob;
  delete card.maskAlpha;
  delete card.dataset.maskReady;
  const cut = $(".cut", card);
  cut.alt = `Cut-out of ${$(".card-title", card).textContent}`;
  await new Promise((resolve, reject) => {
    cut.onload = resolve;
    cut.onerror = () => reject(new ApiError(500, "the result could not be displayed"));
    cut.src = card.dataset.cutUrl;
  });
  if (previous) URL.revokeObjectURL(previous);
  setRatio(card, cut);
  if (currentView(card) === "mask") drawMask(card);
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
      card.original = original;
      card.dataset.beforeUrl = URL.createObjectURL(original);
      $(".before", card).src = card.dataset.beforeUrl;
    }
    setStatus(card, `Removing the background (${model})…`, null);
    const result = await request("POST", `/v1/images/${source.id}/remove-background`, { json: { model } });
    created.push(result.id);
    setStatus(card, "Fetching the result…", null);
    const blob = await request("GET", `/v1/images/${result.id}/download`, { responseType: "blob" });
    if (!card.isConnected) return;
    await showCutout(card, blob);
    card.automatic = blob; // what the editor's clicks correct
    card.edits = null;
    card.dataset.state = "done";
    card.dataset.model = model;
    card.dataset.width = String(result.width);
    card.dataset.height = String(result.height);
    setStatus(card, `Done: ${result.width}×${result.height} (${model})`);
    card.automaticResult = result;
    showQuality(card, result);
    showRerun(card);
    updateBatch();
    reveal(card);
  } catch (error) {
    fail(card, error);
  } finally {
    // The page keeps its copies; the server's are deleted (best effort).
    for (const id of created) request("DELETE", `/v1/images/${id}`).catch(() => {});
  }
}

// The editor's Done: the corrected cut-out replaces the card's (downloads, ZIP, mask view).
// The automatic cut-out's confidence no longer describes it: the card says it was corrected.
async function keepCorrection(card, blob, edits, summary) {
  await showCutout(card, blob);
  card.edits = edits;
  showQuality(card, null);
  if (edits.length) {
    card.dataset.quality = "corrected";
    $(".quality", card).textContent = `✎ Corrected by hand: ${summary}`;
  } else {
    showQuality(card, card.automaticResult);
  }
  updateBatch();
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

// E edits a result: the one holding the focus, the one open, or the only one.
function setUpShortcuts() {
  document.addEventListener("keydown", (event) => {
    if (event.key.toLowerCase() !== "e" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.defaultPrevented || document.querySelector("dialog[open]")) return;
    if (event.target.closest?.("input:not([type=radio]):not([type=range]), textarea, select, [contenteditable]")) return;
    const card = cardToEdit(event.target);
    if (!card) return;
    event.preventDefault();
    openEditor(card);
  });
}

function start() {
  setUpKeyDialog();
  setUpIntake();
  setUpEditor();
  setUpShortcuts();
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
