// alphacut's web page: plain JavaScript, no build step, nothing loaded from elsewhere.
// It speaks the public images API (the IMG Processing-compatible one) with the user's key:
// upload (or fetch a URL), remove the background, download the cut-out, then delete both
// server copies, so that the photos live on in this tab only (the editor, editor.js, puts a
// photo back on the server while it corrects its cut-out; a background is applied there too,
// see "Backgrounds"). files.js writes the PNGs and ZIPs.
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

// "unsupported image format (the data is GIF); alphacut accepts JPEG, PNG..." says
// "unsupported" once: "Unsupported format: the file is GIF. alphacut accepts JPEG, PNG...".
// What the data is ends at the ")" before ";" or the end (it may hold parentheses itself).
function unsupported(message) {
  const parts = /^unsupported image format \((?:the data is )?(.*?)\)(?:;\s*|$)(.*)$/i.exec(message || "");
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
    case 401: return error.code === "missing_api_key"
      ? "No API key was sent: set one (the key button at the top)."
      : "The API key was refused. Set a valid key (button at the top).";
    // "photo too large: 27.1 MB, the limit is 20 MB" says it itself; other 413s get the words.
    case 413: return /too large/i.test(error.message || "")
      ? sentence(error.message) : `Too big: ${sentence(error.message)}`;
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

// One of the key's images deleted, without waiting for it or minding a failure (the server's
// own expiry is the fallback). keepalive: sent even as the page goes; key: the one the image
// was made with, where the page's may have changed since.
function deleteImage(id, { keepalive = false, key = state.key } = {}) {
  fetch(`/v1/images/${id}`, { method: "DELETE", keepalive, headers: { "x-api-key": key || "" } })
    .catch(() => {});
}

// Keys ---------------------------------------------------------------------------------------

function setKey(key, source) {
  // Background copies were uploaded with the old key: deleted with it.
  if (key !== state.key) document.querySelectorAll("#results .card").forEach((card) => forgetCopies(card));
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
  setUpBackground(card);
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
  forgetBackgrounds(card);
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

function showView(card, view) {
  const mask = $(".mask", card);
  if (view === "mask") drawMask(card);
  mask.hidden = view !== "mask";
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
  cards.forEach((card) => { $(".bg-all", card).hidden = done < 2; });
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
  forgetBackgrounds(card); // made on the cut-out before: a new one gets its background anew
  card.cutVersion = (card.cutVersion || 0) + 1;
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
  applyBackground(card);
}

async function process(card, model, create, needsOriginal = false) {
  const created = [];
  try {
    if (!state.key) throw new ApiError(401, "no API key was sent", null, "missing_api_key");
    setStatus(card, "Uploading…", 0);
    const source = await create((fraction) => setStatus(card, "Uploading…", fraction));
    created.push(source.id);
    // A photo this browser cannot show (HEIC outside Safari) is shown from the server's copy:
    // it stored a JPEG (or PNG) of it.
    const unshown = !needsOriginal && !(await $(".before", card).decode().then(() => true, () => false));
    if (needsOriginal || unshown) {
      const original = await request("GET", `/v1/images/${source.id}/download`, { responseType: "blob" });
      card.original = original;
      card.dataset.beforeUrl = URL.createObjectURL(original);
      $(".before", card).src = card.dataset.beforeUrl;
      $(".viewer", card).hidden = false;
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
    for (const id of created) deleteImage(id);
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

// Backgrounds --------------------------------------------------------------------------------
//
// A colour, a photo, the original blurred, and a drop shadow, put under the cut-out by the
// server (POST /v1/images/{id}/background: the engine code of the remove.bg dialect's bg_color,
// bg_image and add_shadow), never drawn by the page: what the card shows and downloads is what
// the API makes. The card's cut-out (the editor's correction, if any) and each photo put under
// it are uploaded once and kept on the server while the controls are in use, so that a choice
// costs one request and its download (then the result is deleted); those copies are deleted
// COPIES_IDLE_MS after the last choice, when the cut-out changes, when the card is dismissed
// and when the page is left. Each result is kept in the page per choice (BACKGROUNDS_KEPT of
// them), so that going back to one is instant; a new cut-out forgets them.

const BACKGROUNDS_KEPT = 8;
const COPIES_IDLE_MS = 30_000;
const photoIds = new WeakMap(); // a background photo (a File) -> a number for the cache's keys
let photoCount = 0;

function setUpBackground(card) {
  card.backgrounds = new Map();
  const picker = $(".swatches input[type=color]", card);
  card.querySelectorAll(".background input, .shadow").forEach((input) =>
    input.addEventListener("change", () => applyBackground(card)));
  picker.addEventListener("change", () => applyBackground(card));
  card.querySelectorAll(".swatch").forEach((swatch) => {
    swatch.style.backgroundColor = swatch.dataset.color;
    swatch.title = swatch.getAttribute("aria-label");
    swatch.addEventListener("click", () => {
      picker.value = swatch.dataset.color;
      $(".background input[value=color]", card).checked = true;
      applyBackground(card);
    });
  });
  const file = $(".bg-photo-file", card);
  $(".bg-photo-choose", card).addEventListener("click", () => file.click());
  // A click on "Photo" with no photo yet opens the chooser (the arrow keys only select it:
  // "Choose photo…" is then the next stop).
  $(".background input[value=photo]", card).addEventListener("click", (event) => {
    if (!card.backgroundPhoto && event.detail > 0) file.click();
  });
  file.addEventListener("change", () => {
    const [chosen] = file.files;
    file.value = "";
    if (!chosen) return;
    setBackgroundPhoto(card, chosen);
    applyBackground(card);
  });
  $(".bg-all", card).addEventListener("click", () => backgroundForAll(card));
}

function setBackgroundPhoto(card, photo) {
  if (!photoIds.has(photo)) photoIds.set(photo, ++photoCount);
  card.backgroundPhoto = photo;
  $(".bg-photo-name", card).textContent = photo.name || "pasted photo";
  $(".background input[value=photo]", card).checked = true;
}

// What the controls ask for (null: the cut-out as it is), with its key in the card's cache.
function backgroundChoice(card) {
  let kind = $(".background input[type=radio]:checked", card).value;
  const shadow = $(".shadow", card).checked;
  const photo = kind === "photo" ? card.backgroundPhoto : kind === "blur" ? card.original : null;
  if ((kind === "photo" || kind === "blur") && !photo) kind = "transparent"; // none chosen yet
  if (kind === "transparent" && !shadow) return null;
  const color = kind === "color" ? $(".swatches input[type=color]", card).value : null;
  const photoKey = kind === "photo" ? photoIds.get(photo) : "";
  return { kind, shadow, color, photo, key: [card.cutVersion, kind, color, photoKey, shadow].join("|") };
}

// The server's cut-out on this background: a PNG, lossless (the page makes JPEG and WebP from it).
// A choice overtaken by a new cut-out (or a removed card) stops before its next request.
async function backgroundOnServer(card, choice) {
  const version = card.cutVersion;
  const goOn = () => {
    if (card.cutVersion !== version || !card.isConnected) throw new Error("overtaken by a new cut-out");
  };
  const used = new Map(); // blob -> the copy this choice used
  const copyOf = (blob, name) => {
    goOn();
    const copy = serverCopy(card, blob, name);
    used.set(blob, copy);
    return copy;
  };
  holdCopies(card, +1);
  try {
    const cut = await copyOf(card.cutBlob, "cutout.png");
    const body = { format: "png" };
    if (choice.color) body.color = choice.color;
    if (choice.photo) {
      const photo = await copyOf(choice.photo, "background");
      body.background_image_id = photo.id;
      // The original, blurred by about 1.5% of its longer side: the subject stands out and
      // the scene is still recognised (the server takes at most 100 px).
      if (choice.kind === "blur") body.blur = Math.min(100, Math.max(4, Math.round(Math.max(cut.width, cut.height) / 64)));
    }
    if (choice.shadow) body.shadow = true;
    goOn();
    let result;
    try {
      result = await request("POST", `/v1/images/${cut.id}/background`, { json: body });
    } catch (error) {
      // Gone from the server: the copies this choice used are uploaded anew next time (only
      // they, and only if the card still holds them: a newer choice's copies are its own).
      if (error.status === 404) for (const [blob, copy] of used) forgetCopy(card, blob, copy);
      throw error;
    }
    try {
      const blob = await request("GET", `/v1/images/${result.id}/download`, { responseType: "blob" });
      return { blob, url: URL.createObjectURL(blob), opaque: choice.kind !== "transparent" };
    } finally {
      deleteImage(result.id);
    }
  } finally {
    holdCopies(card, -1);
  }
}

// A blob's copy on the server (an Image object), uploaded once while the card keeps it.
function serverCopy(card, blob, name) {
  card.copies ||= new Map();
  let copy = card.copies.get(blob);
  if (!copy) {
    copy = upload(blob, name);
    card.copies.set(blob, copy);
    copy.catch(() => { if (card.copies.get(blob) === copy) card.copies.delete(blob); });
  }
  return copy;
}

// Choices in flight hold the copies; COPIES_IDLE_MS after the last one ends they are deleted.
function holdCopies(card, change) {
  card.copiesHeld = (card.copiesHeld || 0) + change;
  clearTimeout(card.copiesTimer);
  if (card.copiesHeld === 0) card.copiesTimer = setTimeout(() => forgetCopies(card), COPIES_IDLE_MS);
}

// Deleted with the key they were uploaded with (the key may change before an upload ends);
// keepalive: sent even as the page goes.
function forgetCopies(card, keepalive = false) {
  clearTimeout(card.copiesTimer);
  for (const [blob, copy] of card.copies || []) forgetCopy(card, blob, copy, keepalive);
}

function forgetCopy(card, blob, copy, keepalive = false) {
  if (card.copies?.get(blob) !== copy) return;
  card.copies.delete(blob);
  const key = state.key;
  copy.then(({ id }) => deleteImage(id, { keepalive, key }), () => {});
}

// The cached result of a choice, made once (a failed one is forgotten, to be tried again).
function backgroundFor(card, choice) {
  let entry = card.backgrounds.get(choice.key);
  if (!entry) {
    entry = { settled: false };
    entry.made = backgroundOnServer(card, choice).then((made) => {
      // Forgotten meanwhile (a new cut-out, more choices): nothing will show it or free it.
      if (card.backgrounds.get(choice.key) !== entry) URL.revokeObjectURL(made.url);
      return Object.assign(entry, made, { settled: true });
    });
    entry.made.catch(() => card.backgrounds.delete(choice.key));
    card.backgrounds.set(choice.key, entry);
    for (const [key, old] of card.backgrounds) {
      if (card.backgrounds.size <= BACKGROUNDS_KEPT) break;
      card.backgrounds.delete(key);
      if (old.url && $(".composed", card).src !== old.url) URL.revokeObjectURL(old.url);
    }
  } else {
    card.backgrounds.delete(choice.key); // most recently used last
    card.backgrounds.set(choice.key, entry);
  }
  return entry;
}

// What a download takes: the result for the current choice (null: the cut-out as it is).
async function shownBackground(card) {
  const choice = backgroundChoice(card);
  return choice ? backgroundFor(card, choice).made : null;
}

function forgetBackgrounds(card) {
  for (const entry of card.backgrounds?.values() || []) if (entry.url) URL.revokeObjectURL(entry.url);
  card.backgrounds?.clear();
  forgetCopies(card);
}

async function applyBackground(card) {
  if (!card.backgrounds) return;
  const mask = currentView(card) === "mask";
  const kind = $(".background input[type=radio]:checked", card).value;
  const picker = $(".swatches input[type=color]", card);
  $(".background", card).disabled = mask;
  $(".shadow", card).disabled = mask;
  picker.disabled = mask || kind !== "color";
  card.querySelectorAll(".swatch").forEach((swatch) => {
    swatch.disabled = mask;
    swatch.setAttribute("aria-pressed", String(kind === "color" && swatch.dataset.color === picker.value));
  });
  $(".bg-options", card).dataset.kind = mask ? "mask" : kind;
  const status = $(".bg-status", card);
  const choice = mask ? null : backgroundChoice(card);
  card.backgroundKey = choice ? choice.key : "";
  if (!choice) {
    status.textContent = !mask && kind === "photo" && !card.backgroundPhoto
      ? "Choose a photo to put behind the subject." : "";
    return showBackground(card, null);
  }
  const entry = backgroundFor(card, choice);
  if (!entry.settled) status.textContent = "Applying the background…";
  try {
    await entry.made;
  } catch (error) {
    if (card.backgroundKey !== choice.key) return;
    status.textContent = `The background could not be applied: ${friendlyError(error)}`;
    return showBackground(card, null);
  }
  if (card.backgroundKey !== choice.key) return; // another choice was made meanwhile
  status.textContent = "";
  await showBackground(card, entry);
}

// The viewer shows the result (its image decoded first, so that nothing flashes), or the
// cut-out on the checkerboard.
async function showBackground(card, entry) {
  const composed = $(".composed", card);
  const mask = currentView(card) === "mask";
  if (entry) {
    composed.alt = `${$(".card-title", card).textContent} on the chosen background`;
    if (composed.getAttribute("src") !== entry.url) {
      composed.src = entry.url;
      await composed.decode().catch(() => {});
      if (card.backgroundKey === "" || $(".composed", card).getAttribute("src") !== entry.url) return;
    }
  }
  composed.hidden = !entry || mask;
  $(".cut", card).hidden = Boolean(entry) || mask;
  const after = $(".after", card);
  after.classList.toggle("checker", !mask && !(entry && entry.opaque));
  card.dataset.background = entry ? card.backgroundKey : "";
}

// In a batch, the same choice for every finished result, one after another (each blurs its
// own original; a chosen photo goes under every one).
async function backgroundForAll(source) {
  const kind = $(".background input[type=radio]:checked", source).value;
  const shadow = $(".shadow", source).checked;
  const colour = $(".swatches input[type=color]", source).value;
  const cards = [...document.querySelectorAll('#results .card[data-state="done"]')].filter((card) => card !== source);
  for (const card of cards) {
    $(`.background input[value=${kind}]`, card).checked = true;
    $(".shadow", card).checked = shadow;
    $(".swatches input[type=color]", card).value = colour;
    if (kind === "photo" && source.backgroundPhoto) setBackgroundPhoto(card, source.backgroundPhoto);
    await applyBackground(card);
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
// command line's --mask writes it), the server's cut-out on its background (waited for, if
// it is still being made), or the server's cut-out itself.
async function shownPng(card) {
  if (currentView(card) === "mask") {
    const cut = $(".cut", card);
    return greyPng(maskAlpha(card), cut.naturalWidth, cut.naturalHeight);
  }
  const background = await shownBackground(card);
  return background ? background.blob : card.cutBlob;
}

async function composite(card, background) {
  let source = $(".cut", card);
  if (currentView(card) === "mask") source = (drawMask(card), $(".mask", card));
  else {
    const made = await shownBackground(card);
    if (made) source = await createImageBitmap(made.blob);
  }
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
      // says so beside the buttons), from what the card shows (its background included).
      // JPEG has no transparency: what is still transparent goes on white. The images API's
      // `convert` is no better: its WebP is always lossy (at quality 90 unless told otherwise).
      const background = format === "jpeg" ? "#ffffff" : null;
      blob = await canvasBlob(await composite(card, background), `image/${format}`, format === "webp" ? 1.0 : 0.92);
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
  window.addEventListener("pagehide", () =>
    document.querySelectorAll("#results .card").forEach((card) => forgetCopies(card, true)));
  const linked = keyFromLink();
  const stored = localStorage.getItem(KEY_STORAGE);
  if (linked) setKey(linked, "link");
  else if (stored) setKey(stored, localStorage.getItem(KEY_SOURCE) === "user" ? "user" : "link");
  else openKeyDialog();
}

start();
