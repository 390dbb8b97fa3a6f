"use strict";
// The page of launch/serve.py: each dropped or chosen photo is sent to POST /colorize (one request per photo, a
// few at a time) and shown as original | colorized with a slider, at full resolution, with a PNG download. With a
// model trained with colour hints, a click on the result places a point whose colour the person picks (the picker
// opens on the model's colour there); points can be dragged and removed, and each change colorizes the photo again.
// No external assets: everything here is served by the same server.

const PARALLEL = 2;
let limits = null;
let hintsServed = false;
const pending = [];
let running = 0;

fetch("server").then((r) => r.json()).then((info) => {
  limits = info.limits;
  hintsServed = Boolean(info.model.hints);
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
      result.onload = null;
      card.querySelector(".size").textContent = `${result.naturalWidth} x ${result.naturalHeight} px`;
      card.querySelector(".compare").hidden = false;
      card.classList.add("done");
      if (hintsServed) editHints(card, file);
      resolve();
    };
    result.onerror = () => { fail(card, `${file.name}: the result could not be shown`); resolve(); };
    result.src = url;
  });
}

// Colour hints: points in the photo's own pixels (what POST /colorize's "hints" field takes), markers over the result.
function editHints(card, file) {
  const frame = card.querySelector(".frame");
  const result = card.querySelector(".result");
  const list = card.querySelector(".hint-list");
  const help = card.querySelector(".hint-help");
  const helpText = help.textContent;
  const state = { points: [], rendering: false, again: false };
  card.querySelector(".hints").hidden = false;
  frame.classList.add("hinting");

  const inPhoto = (event) => {
    const box = frame.getBoundingClientRect();
    const clamp = (value, size) => Math.min(Math.max(value, 0), size - 1);
    return { x: clamp((event.clientX - box.left) / box.width * result.naturalWidth, result.naturalWidth),
             y: clamp((event.clientY - box.top) / box.height * result.naturalHeight, result.naturalHeight) };
  };
  const colourAt = (x, y) => {  // the model's current colour at a pixel of the result
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 1;
    const context = canvas.getContext("2d");
    context.drawImage(result, Math.floor(x), Math.floor(y), 1, 1, 0, 0, 1, 1);
    const [r, g, b] = context.getImageData(0, 0, 1, 1).data;
    return "#" + [r, g, b].map((value) => value.toString(16).padStart(2, "0")).join("");
  };
  const hintsJson = () => JSON.stringify({
    points: state.points.map((point) => ({ x: point.x, y: point.y, color: point.color })) });
  const place = (point) => {
    point.marker.style.left = `${100 * (point.x + 0.5) / result.naturalWidth}%`;
    point.marker.style.top = `${100 * (point.y + 0.5) / result.naturalHeight}%`;
    point.marker.style.background = point.color;
    point.where.textContent = `at (${Math.round(point.x)}, ${Math.round(point.y)})`;
  };
  const remove = (point) => {
    point.marker.remove();
    point.row.remove();
    state.points = state.points.filter((other) => other !== point);
    render();
  };

  async function render() {  // one request at a time; changes made meanwhile are sent together after it
    if (state.rendering) { state.again = true; return; }
    state.rendering = true;
    card.classList.add("rendering");
    const hints = hintsJson();
    const form = new FormData();
    form.append("hints", hints);
    form.append("file", file);
    try {
      const response = await fetch("colorize", { method: "POST", body: form });
      if (response.status === 503) {
        const seconds = Number(response.headers.get("Retry-After")) || 1;
        await new Promise((done) => setTimeout(done, seconds * 1000));
        state.again = true;
      } else if (!response.ok) {
        let message = `Error ${response.status}`;
        try { message = (await response.json()).error; } catch (e) { /* keep the status */ }
        help.textContent = message;
        help.classList.add("error");
      } else {
        const url = URL.createObjectURL(await response.blob());
        await new Promise((done) => { result.onload = done; result.onerror = done; result.src = url; });
        card.querySelector(".download").href = url;
        card.querySelector(".full").href = url;
        card.dataset.renderedHints = hints;  // what the shown result was colorized with
        help.textContent = helpText;
        help.classList.remove("error");
      }
    } catch (e) {
      help.textContent = "The server could not be reached";
    }
    state.rendering = false;
    card.classList.remove("rendering");
    if (state.again) { state.again = false; render(); }
  }

  function add(x, y) {
    const point = { x, y, color: colourAt(x, y), marker: document.createElement("div") };
    point.marker.className = "marker";
    point.row = document.getElementById("hint-row").content.firstElementChild.cloneNode(true);
    point.where = point.row.querySelector(".hint-where");
    const picker = point.row.querySelector(".hint-color");
    picker.value = point.color;
    picker.addEventListener("input", () => { point.color = picker.value; place(point); });
    picker.addEventListener("change", () => { point.color = picker.value; place(point); render(); });
    point.row.querySelector(".hint-remove").addEventListener("click", () => remove(point));
    point.marker.addEventListener("contextmenu", (event) => { event.preventDefault(); remove(point); });
    point.marker.addEventListener("click", (event) => event.stopPropagation());
    point.marker.addEventListener("pointerdown", (event) => {
      event.preventDefault();  // no text selection or native drag, which would cancel the pointer
      event.stopPropagation();
      point.marker.setPointerCapture(event.pointerId);
      point.dragging = true;
    });
    point.marker.addEventListener("pointermove", (event) => {
      if (!point.dragging) return;
      Object.assign(point, inPhoto(event));
      place(point);
    });
    // The capture ends with the pointer's release, or its cancellation: either way the drag is over.
    point.marker.addEventListener("lostpointercapture", () => {
      if (!point.dragging) return;
      point.dragging = false;
      render();
    });
    frame.appendChild(point.marker);
    list.appendChild(point.row);
    state.points.push(point);
    place(point);
    return picker;
  }

  frame.addEventListener("click", (event) => {
    const { x, y } = inPhoto(event);
    const picker = add(x, y);
    render();
    picker.click();  // the picker opens on the model's colour at that point
  });
}
