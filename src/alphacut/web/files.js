// alphacut's web page: the files it writes and reads itself, exactly (a canvas cannot: it
// stores colours premultiplied by alpha, which rounds a soft edge's colours, and it writes
// RGBA only). ZIP archives of stored entries, PNG in 8-bit grey or RGBA, and the PNGs the
// server writes read back to their exact pixels.
"use strict";

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

const PNG_SIGNATURE = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

async function deflate(bytes) {
  return new Uint8Array(
    await new Response(new Blob([bytes]).stream().pipeThrough(new CompressionStream("deflate"))).arrayBuffer());
}

async function inflate(bytes) {
  return new Uint8Array(
    await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"))).arrayBuffer());
}

// An 8-bit PNG of `channels` 1 (grey, what `alphacut remove --mask` writes) or 4 (RGBA), deflated
// by the browser's CompressionStream; each row "Sub"-filtered, which turns flat runs to zeros.
async function encodePng(pixels, width, height, channels) {
  const stride = width * channels;
  const rows = new Uint8Array((stride + 1) * height);
  for (let y = 0; y < height; y += 1) {
    const row = y * (stride + 1);
    const from = y * stride;
    rows[row] = 1;
    for (let i = 0; i < channels; i += 1) rows[row + 1 + i] = pixels[from + i];
    for (let i = channels; i < stride; i += 1) {
      rows[row + 1 + i] = (pixels[from + i] - pixels[from + i - channels]) & 0xff;
    }
  }
  const header = new DataView(new ArrayBuffer(13));
  header.setUint32(0, width);
  header.setUint32(4, height);
  header.setUint8(8, 8); // bit depth
  header.setUint8(9, channels === 4 ? 6 : 0); // RGBA or grey; compression, filter, interlace 0
  return new Blob([
    PNG_SIGNATURE,
    ...pngChunk("IHDR", new Uint8Array(header.buffer)),
    ...pngChunk("IDAT", await deflate(rows)),
    ...pngChunk("IEND", new Uint8Array(0)),
  ], { type: "image/png" });
}

const greyPng = (grey, width, height) => encodePng(grey, width, height, 1);
const rgbaPng = (rgba, width, height) => encodePng(rgba, width, height, 4);

const PNG_CHANNELS = { 0: 1, 2: 3, 4: 2, 6: 4 }; // colour type: grey, RGB, grey+alpha, RGBA

// The exact pixels (RGBA) of an 8-bit, non-interlaced PNG without a palette: what the server
// writes. Anything else gives null (the caller asks the browser instead).
async function decodePng(blob) {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  if (bytes.length < 8 || PNG_SIGNATURE.some((value, i) => bytes[i] !== value)) return null;
  const view = new DataView(bytes.buffer);
  const data = [];
  let width = 0;
  let height = 0;
  let channels = 0;
  for (let at = 8; at + 8 <= bytes.length;) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    const body = bytes.subarray(at + 8, at + 8 + length);
    if (type === "IHDR") {
      width = view.getUint32(at + 8);
      height = view.getUint32(at + 12);
      channels = PNG_CHANNELS[body[9]] || 0;
      if (body[8] !== 8 || !channels || body[12] !== 0) return null;
    } else if (type === "tRNS") {
      return null; // a transparent colour: rare, and the browser knows it
    } else if (type === "IDAT") {
      data.push(body);
    } else if (type === "IEND") {
      break;
    }
    at += 12 + length;
  }
  if (!channels || !data.length) return null;
  const raw = await inflate(new Blob(data));
  const stride = width * channels;
  if (raw.length < (stride + 1) * height) return null;
  const rows = new Uint8Array(stride * height);
  for (let y = 0; y < height; y += 1) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = y * stride;
    const up = out - stride;
    for (let i = 0; i < stride; i += 1) {
      const a = i >= channels ? rows[out + i - channels] : 0;
      const b = y ? rows[up + i] : 0;
      const c = y && i >= channels ? rows[up + i - channels] : 0;
      let predicted = 0;
      if (filter === 1) predicted = a;
      else if (filter === 2) predicted = b;
      else if (filter === 3) predicted = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        predicted = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (filter !== 0) return null;
      rows[out + i] = (line[i] + predicted) & 0xff;
    }
  }
  if (channels === 4) return { width, height, rgba: new Uint8ClampedArray(rows.buffer) };
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += channels) {
    const grey = channels < 3;
    rgba[i] = rows[j];
    rgba[i + 1] = grey ? rows[j] : rows[j + 1];
    rgba[i + 2] = grey ? rows[j] : rows[j + 2];
    rgba[i + 3] = channels === 2 ? rows[j + 1] : channels === 4 ? rows[j + 3] : 255;
  }
  return { width, height, rgba };
}

// An image's pixels (RGBA): exact for the PNGs the server writes; any other image as the
// browser decodes it, turned as its EXIF says and without colour management (the server
// reads the stored values too).
async function imagePixels(blob) {
  const exact = await decodePng(blob);
  if (exact) return exact;
  const bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", imageOrientation: "from-image" });
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
  return { width: canvas.width, height: canvas.height, rgba: data };
}
