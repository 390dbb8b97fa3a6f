"use strict";
// The page of launch/serve.py: each dropped or chosen photo is sent to POST /colorize (one request per photo, a
// few at a time) and shown as original | colorized with a slider, at full resolution, with a PNG download.
// No external assets: everything here is served by the same server.

const PARALLEL = 2;
let limits = null;
const pending = [];
let running = 0;

fetch("server").then((r) => r.json()).then((info) => {
  limits = info.limits;
  document.getElementById("limits").textContent =
    `Up to ${limits.max_upload_mb} MB and ${(limits.max_pixels / 1e6).toFixed(0)} megapixels per photo.`;
  document.getElementById("model").textContent +=
    ` Model: ${info.model.generator}, rendered at ${info.model.render_size} px.`;
}).catch(() => {});

const drop = document.getElementById("drop");
const input = document.getElementById("files");
input.addEventListener("change", () => { addFiles(input.files); input.value = ""; });
for (const name of ["dragenter", "dragover"]) {
  drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
}
for (const name of ["dragleave", "drop"]) {
  drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.remove("over"); });
}
drop.addEventListener("drop", (event) => addFiles(event.dataTransfer.files));

function addFiles(files) {
  for (const file of files) {
    const card = document.getElementById("card").content.firstElementChild.cloneNode(true);
    card.querySelector(".name").textContent = file.name;
    document.getElementById("results").prepend(card);
    if (limits && file.size > limits.max_upload_mb * 1048576) {
      fail(card, `${file.name} is too large: ${(file.size / 1048576).toFixed(1)} MB, the limit is ` +
           `${limits.max_upload_mb} MB`);
      continue;
    }
    pending.push({ file, card });
  }
  next();
}

function next() {
  while (running < PARALLEL && pending.length) {
    const job = pending.shift();
    running += 1;
    colorize(job.file, job.card).finally(() => { running -= 1; next(); });
  }
}

function say(card, text, fraction) {
  card.querySelector(".message").textContent = text;
  const progress = card.querySelector(".progress");
  if (fraction === null) progress.removeAttribute("value"); else progress.value = fraction;
}

function fail(card, text) {
  card.classList.add("error");
  say(card, text, 0);
}

function colorize(file, card) {
  return new Promise((resolve) => {
    const request = new XMLHttpRequest();
    request.open("POST", "colorize");
    request.responseType = "blob";
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) say(card, `Uploading ${Math.round(100 * event.loaded / event.total)}%`,
                                      0.5 * event.loaded / event.total);
    };
    request.upload.onload = () => say(card, "Colorizing", null);
    request.onerror = () => { fail(card, "The server could not be reached"); resolve(); };
    request.onload = async () => {
      if (request.status === 503) {  // the server's queue is full: wait as it asks, then try again
        const seconds = Number(request.getResponseHeader("Retry-After")) || 1;
        say(card, `Server busy, retrying in ${seconds} s`, null);
        setTimeout(() => colorize(file, card).then(resolve), seconds * 1000);
        return;
      }
      if (request.status !== 200) {
        let message = `Error ${request.status}`;
        try { message = JSON.parse(await request.response.text()).error; } catch (e) { /* keep the status */ }
        fail(card, `${file.name}: ${message}`);
        resolve();
        return;
      }
      show(card, file, request.response).then(resolve);
    };
    say(card, "Uploading", 0);
    request.send(file);
  });
}

function show(card, file, blob) {
  const result = card.querySelector(".result");
  const original = card.querySelector(".original");
  const url = URL.createObjectURL(blob);
  const stem = file.name.replace(/\.[^.]*$/, "");
  const download = card.querySelector(".download");
  download.href = url;
  download.download = `${stem}.colorized.png`;
  card.querySelector(".full").href = url;
  original.src = URL.createObjectURL(file);
  const slider = card.querySelector(".slider");
  slider.addEventListener("input", () => { original.style.clipPath = `inset(0 ${100 - slider.value}% 0 0)`; });
  return new Promise((resolve) => {
    result.onload = () => {
      card.querySelector(".size").textContent = `${result.naturalWidth} x ${result.naturalHeight} px`;
      card.querySelector(".compare").hidden = false;
      card.classList.add("done");
      resolve();
    };
    result.onerror = () => { fail(card, `${file.name}: the result could not be shown`); resolve(); };
    result.src = url;
  });
}
