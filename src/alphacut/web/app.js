// alphacut's web page: plain JavaScript, no build step, nothing loaded from elsewhere.
// It speaks the public images API (the IMG Processing-compatible one) with the user's key:
// upload (or fetch a URL), remove the background, download the cut-out, then delete both
// server copies, so that the photos live on in this tab only.
"use strict";

const KEY_STORAGE = "alphacut.apiKey";
const KEY_SOURCE = "alphacut.apiKeySource"; // "user" (typed in) or "link" (alphacut serve's link)
const PARALLEL = 2; // images processed at once; the server queues and bounds the rest

const $ = (selector, root = document) => root.querySelector(selector);

const state = { key: null, keySource: null, queue: [], running: 0, cards: 0 };

// API ----------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

function friendlyError(error) {
  if (!(error instanceof ApiError)) return "Network error: is the server still running?";
  const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : "";
  switch (error.status) {
    case 401: return "The API key was refused. Set a valid key (button at the top).";
    case 413: return `Too big: ${error.message}`;
    case 415: return `Unsupported format: ${error.message}`;
    case 422: return `The file could not be read: ${error.message}`;
    case 429: return `Rate limit reached.${wait}`;
    case 503: return `The server is busy.${wait}`;
    default: return error.message || `The server answered ${error.status}.`;
  }
}

async function toApiError(status, text, retryAfter) {
  let message = text;
  try {
    message = JSON.parse(text).message || text;
  } catch (_) { /* not JSON: keep the text */ }
  return new ApiError(status, message, retryAfter);
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
  $("#key-label").textContent = key
    ? `Key ${key.slice(0, 9)}…${source === "link" ? " (from link)" : ""}`
    : "No API key";
  $("#key-button").textContent = key ? "Change key" : "Set key";
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
  $("#empty").hidden = true;

  const compare = $(".compare", card);
  const after = $(".after", card);
  const applyCompare = () => { after.style.clipPath = `inset(0 0 0 ${compare.value}%)`; };
  compare.addEventListener("input", applyCompare);
  applyCompare();

  card.querySelectorAll(".view input").forEach((input) =>
    input.addEventListener("change", () => showView(card, input.value)));
  const colour = $(".background input[type=color]", card);
  const applyBackground = () => {
    const solid = $(".background input[value=color]", card).checked;
    after.classList.toggle("checker", !solid);
    after.style.backgroundColor = solid ? colour.value : "";
  };
  card.querySelectorAll(".background input").forEach((input) =>
    input.addEventListener("input", () => {
      if (input.type === "color") $(".background input[value=color]", card).checked = true;
      applyBackground();
    }));
  card.querySelectorAll(".downloads button").forEach((button) =>
    button.addEventListener("click", () => download(card, button.dataset.format)));
  $(".dismiss", card).addEventListener("click", () => {
    for (const url of [card.dataset.beforeUrl, card.dataset.cutUrl]) if (url) URL.revokeObjectURL(url);
    card.remove();
    $("#empty").hidden = $("#results").children.length > 0;
  });
  return card;
}

function setStatus(card, text, progress = null) {
  $(".card-status", card).textContent = text;
  const bar = $(".card-progress", card);
  if (progress === null) bar.removeAttribute("value");
  else bar.value = Math.round(progress * 100);
}

function fail(card, error) {
  card.dataset.state = "error";
  setStatus(card, "Failed");
  $(".error", card).textContent = friendlyError(error);
  $(".retry", card).hidden = false;
  if (error instanceof ApiError && error.status === 401) {
    openKeyDialog(state.keySource === "link"
      ? "The server refused the key of its link: it has been restarted since. "
        + "Open the link it printed this time, or enter a key."
      : "The server refused the key.");
  }
}

function showView(card, view) {
  const mask = $(".mask", card);
  if (view === "mask" && !card.dataset.maskReady) drawMask(card);
  mask.hidden = view !== "mask";
  $(".cut", card).hidden = view === "mask";
}

function drawMask(card) {
  const cut = $(".cut", card);
  const canvas = $(".mask", card);
  canvas.width = cut.naturalWidth;
  canvas.height = cut.naturalHeight;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(cut, 0, 0);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
  const data = pixels.data;
  for (let i = 0; i < data.length; i += 4) {
    const alpha = data[i + 3];
    data[i] = alpha; data[i + 1] = alpha; data[i + 2] = alpha; data[i + 3] = 255;
  }
  context.putImageData(pixels, 0, 0);
  card.dataset.maskReady = "1";
}

// Processing ---------------------------------------------------------------------------------

function selectedModel() {
  return document.querySelector("input[name=model]:checked").value;
}

function enqueue(job) {
  state.queue.push(job);
  pump();
}

function pump() {
  while (state.running < PARALLEL && state.queue.length) {
    const job = state.queue.shift();
    state.running += 1;
    job().finally(() => { state.running -= 1; pump(); });
  }
}

function addFile(file) {
  const card = createCard(file.name || "pasted image");
  card.dataset.beforeUrl = URL.createObjectURL(file);
  // A file the browser cannot show (not an image) gets no broken preview, only its error.
  $(".before", card).onerror = () => { $(".stage", card).hidden = true; };
  $(".before", card).src = card.dataset.beforeUrl;
  $(".before", card).alt = `Original: ${file.name || "pasted image"}`;
  const model = selectedModel();
  const run = () => process(card, model, (onUpload) => {
    const form = new FormData();
    form.append("name", (file.name || "image").slice(0, 30));
    form.append("image", file);
    return request("POST", "/v1/images/upload", { body: form, onUpload });
  });
  $(".retry", card).onclick = () => { resetCard(card); enqueue(run); };
  setStatus(card, "Waiting…", 0);
  enqueue(run);
}

function addUrl(url) {
  const card = createCard(url);
  const model = selectedModel();
  const name = (url.split("/").pop() || "image").split("?")[0].slice(0, 30) || "image";
  const run = () => process(card, model, () => request("POST", "/v1/images", { json: { name, url } }), true);
  $(".retry", card).onclick = () => { resetCard(card); enqueue(run); };
  setStatus(card, "Waiting…", 0);
  enqueue(run);
}

function resetCard(card) {
  card.dataset.state = "working";
  $(".error", card).textContent = "";
  $(".retry", card).hidden = true;
  setStatus(card, "Waiting…", 0);
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
    card.dataset.cutUrl = URL.createObjectURL(blob);
    card.cutBlob = blob;
    const cut = $(".cut", card);
    cut.alt = `Cut-out of ${$(".card-title", card).textContent}`;
    await new Promise((resolve, reject) => {
      cut.onload = resolve;
      cut.onerror = () => reject(new ApiError(500, "the result could not be displayed"));
      cut.src = card.dataset.cutUrl;
    });
    card.dataset.state = "done";
    card.dataset.width = String(result.width);
    card.dataset.height = String(result.height);
    setStatus(card, `Done: ${result.width}×${result.height}`);
  } catch (error) {
    fail(card, error);
  } finally {
    // The page keeps its copies; the server's are deleted (best effort).
    for (const id of created) request("DELETE", `/v1/images/${id}`).catch(() => {});
  }
}

// Downloads ----------------------------------------------------------------------------------

async function download(card, format) {
  const solid = $(".background input[value=color]", card).checked;
  const colour = $(".background input[type=color]", card).value;
  const base = ($(".card-title", card).textContent.split("/").pop() || "image")
    .replace(/\.[A-Za-z0-9]+$/, "").replace(/[^A-Za-z0-9._-]+/g, "_") || "image";
  const extension = { png: "png", webp: "webp", jpeg: "jpg" }[format];
  let blob = card.cutBlob;
  if (format !== "png" || solid) {
    // Composite at full resolution; JPEG cannot be transparent, so it goes on white by default.
    const cut = $(".cut", card);
    const canvas = document.createElement("canvas");
    canvas.width = cut.naturalWidth;
    canvas.height = cut.naturalHeight;
    const context = canvas.getContext("2d");
    if (solid || format === "jpeg") {
      context.fillStyle = solid ? colour : "#ffffff";
      context.fillRect(0, 0, canvas.width, canvas.height);
    }
    context.drawImage(cut, 0, 0);
    blob = await new Promise((resolve) => canvas.toBlob(resolve, `image/${format}`, 0.92));
  }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `${base}-cutout.${extension}`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

// Intake -------------------------------------------------------------------------------------

function addFiles(files) {
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
    addUrl(field.value.trim());
    field.value = "";
  });
}

function start() {
  setUpKeyDialog();
  setUpIntake();
  const linked = keyFromLink();
  const stored = localStorage.getItem(KEY_STORAGE);
  if (linked) setKey(linked, "link");
  else if (stored) setKey(stored, localStorage.getItem(KEY_SOURCE) === "user" ? "user" : "link");
  else openKeyDialog();
}

start();
