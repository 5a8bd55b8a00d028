// Drives remove.bg's npm client (remove.bg 1.3.0) against alphacut, for
// tests/api/test_removebg_clients.py. The client hard-codes its endpoint in one constant
// (API_ENDPOINT); this script points it at ALPHACUT_URL when the module is loaded, as a DNS
// entry would in production. Usage: node drive.js file|base64|url INPUT OUTPUT [JSON options]
"use strict";
const fs = require("fs");
const Module = require("module");
const path = require("path");

const REMOTE = "https://api.remove.bg/v1.0/removebg";
const target = process.env.ALPHACUT_URL.replace(/\/$/, "") + "/v1.0/removebg";
const clientFile = require.resolve("remove.bg");
const compile = Module.prototype._compile;
Module.prototype._compile = function (content, filename) {
  if (path.resolve(filename) === path.resolve(clientFile)) {
    if (!content.includes(REMOTE)) throw new Error("the client no longer names " + REMOTE);
    content = content.split(REMOTE).join(target);
  }
  return compile.call(this, content, filename);
};
const removebg = require("remove.bg");

const [mode, input, outputFile, extra] = process.argv.slice(2);
const options = Object.assign(
  { apiKey: process.env.ALPHACUT_KEY, outputFile },
  extra ? JSON.parse(extra) : {}
);
let call;
if (mode === "file") call = removebg.removeBackgroundFromImageFile({ ...options, path: input });
else if (mode === "base64")
  call = removebg.removeBackgroundFromImageBase64({
    ...options,
    base64img: fs.readFileSync(input).toString("base64"),
  });
else call = removebg.removeBackgroundFromImageUrl({ ...options, url: input });
call.then(
  (result) => {
    delete result.base64img;
    console.log(JSON.stringify({ ok: true, result }));
  },
  (errors) => {
    console.log(JSON.stringify({ ok: false, errors }));
  }
);
