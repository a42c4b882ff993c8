// keras-sign demo page: camera frames to the server over a WebSocket, its answers on the page.
// The spelling rules live on the server (keras_sign/spelling/decoder.py); this file only draws.
"use strict";

const $ = (id) => document.getElementById(id);
const SEND_HEIGHT = 240;          // frames go as JPEG at this height: enough for a 64-224 px model
const MAX_FPS = 30;
let socket = null;
let info = null;
let waiting = false;              // a frame is at the server: the next one waits (newest wins)
let sentAt = [];

function status(message, isError) {
  $("status").textContent = message;
  $("status").className = isError ? "error" : "";
}

async function loadInfo() {
  info = await (await fetch("/api/info")).json();
  $("model").textContent = `${info.model} (${info.runtime}), ${info.classes.length} classes, crop: ${info.crop}`;
  $("hold").value = info.decoder.hold;
  $("confidence").value = info.decoder.min_confidence;
  showSliders();
  if (info.lexicon) {
    $("lexicon-row").hidden = false;
    $("lexicon-name").textContent = info.lexicon;
  }
  if (info.teach) await loadTeach();
}

// Speech through the browser's own synthesis (the Web Speech API): no network, no audio from the server.
function say(text) {
  if (!text.trim() || !window.speechSynthesis) return;
  window.speechSynthesis.speak(new SpeechSynthesisUtterance(text.trim()));
}

function speakFinishedWords(events) {
  // A word is finished when a space follows it (a space sign, a pause, or a correction just before one).
  if (!$("auto-speak").checked) return;
  for (const event of events) {
    if (event.action === "space" || event.action === "word_gap") say(event.text.trimEnd().split(" ").pop());
  }
}

function showSliders() {
  $("hold-value").textContent = Number($("hold").value).toFixed(2);
  $("confidence-value").textContent = Number($("confidence").value).toFixed(2);
}

function sendSettings() {
  showSliders();
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({type: "settings", hold: Number($("hold").value),
                                min_confidence: Number($("confidence").value), lexicon: $("lexicon").checked}));
  }
}

// The 21 landmarks' bones (keras_sign/hands/draw.py): thumb, four fingers, the palm's edge.
const BONES = [[0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [5, 6], [6, 7], [7, 8], [5, 9], [9, 10], [10, 11], [11, 12],
               [9, 13], [13, 14], [14, 15], [15, 16], [13, 17], [17, 18], [18, 19], [19, 20], [0, 17]];
let lastHand = null;              // the hand stage's last answer: landmarks and crop, or null (no hand)

function drawCrop() {
  // The square the model sees over the video: the hand's (a model with a hand stage, with its skeleton),
  // else the centred square of the frame, or the whole frame.
  const video = $("video"), canvas = $("overlay");
  canvas.width = canvas.clientWidth;
  canvas.height = canvas.clientHeight;
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  if (!video.videoWidth) return;
  const scale = Math.min(canvas.width / video.videoWidth, canvas.height / video.videoHeight);
  const width = video.videoWidth * scale, height = video.videoHeight * scale;
  const left = (canvas.width - width) / 2, top = (canvas.height - height) / 2;
  context.strokeStyle = "#ffb300";
  context.lineWidth = 3;
  if (info && info.crop === "hand") {
    if (!lastHand) return;
    const [bx, by, bw, bh] = lastHand.box;
    context.strokeRect(left + bx * width, top + by * height, bw * width, bh * height);
    context.strokeStyle = "#00e676";
    context.lineWidth = 2;
    context.beginPath();
    for (const [a, b] of BONES) {
      const [ax, ay] = lastHand.landmarks[a], [cx, cy] = lastHand.landmarks[b];
      context.moveTo(left + ax * width, top + ay * height);
      context.lineTo(left + cx * width, top + cy * height);
    }
    context.stroke();
    return;
  }
  const side = info && info.crop === "full" ? null : Math.min(width, height);
  if (side) context.strokeRect(left + (width - side) / 2, top + (height - side) / 2, side, side);
  else context.strokeRect(left, top, width, height);
}

function showFrame(reply) {
  if ("hand" in reply) {
    lastHand = reply.hand;
    trackHand(reply.hand);
    $("hand").textContent = reply.hand ? `${reply.hand.handedness} hand` : "no hand";
    $("hand").className = reply.hand ? "hand" : "hand none";
  }
  $("bars").replaceChildren(...reply.top.map(([name, probability]) => {
    const row = document.createElement("li");
    row.innerHTML = `<span></span><span class="bar"><div></div></span><span></span>`;
    row.children[0].textContent = name;
    row.children[1].firstChild.style.width = `${(100 * probability).toFixed(1)}%`;
    row.children[2].textContent = probability.toFixed(2);
    return row;
  }));
  const state = reply.state;
  $("symbol").textContent = state.symbol === null ? "-" : (state.symbol.trim() ? state.symbol : state.candidate);
  $("progress").style.width = `${(100 * state.progress).toFixed(0)}%`;
  $("held").textContent = `held ${state.held.toFixed(1)} s of ${reply.hold.toFixed(2)}`;
  $("text").textContent = state.text;
  speakFinishedWords(reply.events);
  const ms = reply.latency_ms;
  $("latency").textContent = ms.total.toFixed(1);
  $("decode").textContent = ms.decode.toFixed(1);
  $("model-ms").textContent = ms.model.toFixed(1);
  $("hand-ms").textContent = (ms.hand || 0).toFixed(1);
  $("decoder").textContent = ms.decoder.toFixed(2);
  $("dropped").textContent = reply.dropped;
  const now = performance.now();
  sentAt = sentAt.filter((t) => now - t < 1000);
  $("fps").textContent = sentAt.length;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws`);
  socket.onmessage = (event) => {
    const reply = JSON.parse(event.data);
    if (reply.type === "frame") showFrame(reply);
    else if (reply.type === "error") status(reply.message, true);
    waiting = false;
  };
  socket.onclose = () => status("The connection to the server closed; reload the page.", true);
  socket.onopen = () => {
    sendSettings();
    if (!$("start").disabled) status("Connected: press Start camera, or drop a photo or a video.");
  };
}

const grab = document.createElement("canvas");

function sendFrame() {
  const video = $("video");
  if (socket && socket.readyState === WebSocket.OPEN && !waiting && video.videoWidth) {
    grab.height = SEND_HEIGHT;
    grab.width = Math.round(video.videoWidth * SEND_HEIGHT / video.videoHeight);
    grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
    waiting = true;
    grab.toBlob((blob) => { socket.send(blob); sentAt.push(performance.now()); captureShot(blob); },
                "image/jpeg", 0.85);
  }
  drawCrop();
  setTimeout(sendFrame, 1000 / MAX_FPS);
}

async function startCamera() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 480}, audio: false});
    $("video").srcObject = stream;
    await $("video").play();
    status(info.crop === "hand" ? "Camera on: spell with your hand; the square follows it."
                                : "Camera on: spell with your hand inside the square.");
    $("start").disabled = true;
    sendFrame();
  } catch (error) {
    status(`No camera (${error.name}): the page needs localhost or HTTPS and your permission. ` +
           "You can still drop a photo or a video.", true);
  }
}

async function upload(file) {
  const kind = file.type.startsWith("video/") ? "video" : "photo";
  $("upload").textContent = `Reading the ${kind}...`;
  const response = await fetch(`/api/${kind}`, {method: "POST", body: file, headers: {"X-Filename": file.name}});
  const answer = await response.json();
  if (!response.ok) {
    $("upload").innerHTML = `<span class="error"></span>`;
    $("upload").firstChild.textContent = answer.error;
  } else if (kind === "photo") {
    $("upload").textContent = `${file.name}: ` + answer.top.map(([name, p]) => `${name} ${p.toFixed(2)}`).join(", ");
  } else {
    $("upload").textContent = `${file.name}: "${answer.text}" (${answer.frames} frames, ` +
                              `${answer.frames_per_second} frames/s)`;
  }
}

// Teach mode (keras-sign demo RUN --shots DIR): shots of the signer in front of the camera, saved by the server
// as they come (keras_sign/demo/teach.py), then an adapt in the background and a switch to the adapted model.
const STEADY_FRAMES = 5;          // a capture starts once the hand has been in view this many frames...
const STEADY_MOVE = 0.03;         // ...its square's centre moving less than this share of the frame between them
let recentCentres = [];
let capture = null;               // {sign, left, started} while shots are being taken

function trackHand(hand) {
  if (!hand) { recentCentres = []; return; }
  const [x, y, w, h] = hand.box;
  recentCentres = [...recentCentres, [x + w / 2, y + h / 2]].slice(-STEADY_FRAMES);
}

function handSteady() {
  if (info.crop !== "hand") return true;  // a model without a hand stage: the frame as it is
  if (recentCentres.length < STEADY_FRAMES) return false;
  return recentCentres.every(([x, y], i) => i === 0 ||
    Math.hypot(x - recentCentres[i - 1][0], y - recentCentres[i - 1][1]) < STEADY_MOVE);
}

function teachStatus(message, isError) {
  $("teach-status").textContent = message;
  $("teach-status").className = isError ? "error" : "";
}

function addThumb(sign, name, source) {
  const figure = document.createElement("figure");
  figure.dataset.sign = sign;
  figure.innerHTML = `<img alt=""><figcaption></figcaption><button title="Discard this shot">x</button>`;
  figure.querySelector("img").src = source;
  figure.querySelector("figcaption").textContent = sign;
  figure.querySelector("button").onclick = async () => {
    const response = await fetch(`/api/teach/shots/${encodeURIComponent(sign)}/${encodeURIComponent(name)}`,
                                 {method: "DELETE"});
    if (response.ok) figure.remove();
    else teachStatus((await response.json()).error, true);
  };
  $("thumbs").append(figure);
}

async function captureShot(blob) {
  if (!capture || capture.left <= 0 || !handSteady()) return;
  capture.left -= 1;
  const sign = capture.sign;
  const response = await fetch(`/api/teach/shots/${encodeURIComponent(sign)}`, {method: "POST", body: blob});
  const answer = await response.json();
  if (response.ok) {
    addThumb(sign, answer.name, URL.createObjectURL(blob));
  } else if (capture) {
    capture.left += 1;  // that frame had no hand after all: take another
    teachStatus(answer.error, true);
  }
  if (capture && capture.left === 0) {
    teachStatus(`Captured ${capture.count} shots of ${sign}.`);
    capture = null;
  }
}

function startCapture() {
  if (!$("start").disabled) { teachStatus("Start the camera first.", true); return; }
  const count = Math.max(1, Math.min(30, Number($("teach-count").value) || 5));
  capture = {sign: $("teach-sign").value, left: count, count};
  teachStatus(`Show ${capture.sign} and hold it still...`);
}

function showTeach(state) {
  const job = state.adapt;
  $("teach-progress").value = job.epochs ? job.epoch / job.epochs : 0;
  $("use-original").disabled = state.using === "original";
  $("use-adapted").disabled = !state.models.includes("adapted") || state.using === "adapted";
  $("teach-adapt").disabled = job.state === "running";
  if (job.state === "running") teachStatus(`Adapting: epoch ${job.epoch} of ${job.epochs}...`);
  else if (job.state === "failed") teachStatus(`The adapt failed: ${job.error}`, true);
}

async function loadTeach() {
  const state = await (await fetch("/api/teach")).json();
  $("teach").hidden = false;
  $("teach-sign").replaceChildren(...info.classes.map((name) => new Option(name, name)));
  for (const [sign, names] of Object.entries(state.shots)) {
    for (const name of names) addThumb(sign, name, `/api/teach/shots/${encodeURIComponent(sign)}/${encodeURIComponent(name)}`);
  }
  showTeach(state);
}

async function teachRequest(path) {
  const response = await fetch(path, {method: "POST"});
  const state = await response.json();
  if (!response.ok) { teachStatus(state.error, true); return null; }
  showTeach(state);
  return state;
}

async function startAdapt() {
  let state = await teachRequest("/api/teach/adapt");
  while (state && state.adapt.state === "running") {
    await new Promise((resolve) => setTimeout(resolve, 500));
    state = await (await fetch("/api/teach")).json();
    showTeach(state);
  }
  if (state && state.adapt.state === "done") {
    teachStatus(`The page uses the adapted model (${state.adapt.run}); the original is one click away.`);
  }
}

async function useModel(which) {
  if (await teachRequest(`/api/teach/use/${which}`)) teachStatus(`The page uses the ${which} model.`);
}

$("teach-capture").onclick = startCapture;
$("teach-adapt").onclick = startAdapt;
$("use-original").onclick = () => useModel("original");
$("use-adapted").onclick = () => useModel("adapted");
$("start").onclick = startCamera;
$("clear").onclick = () => socket && socket.send(JSON.stringify({type: "clear"}));
$("copy").onclick = () => navigator.clipboard.writeText($("text").textContent);
$("speak").onclick = () => say($("text").textContent);
$("lexicon").onchange = sendSettings;
$("hold").oninput = sendSettings;
$("confidence").oninput = sendSettings;
$("drop").onclick = () => $("file").click();
$("file").onchange = () => $("file").files[0] && upload($("file").files[0]);
$("drop").ondragover = (event) => { event.preventDefault(); $("drop").classList.add("over"); };
$("drop").ondragleave = () => $("drop").classList.remove("over");
$("drop").ondrop = (event) => {
  event.preventDefault();
  $("drop").classList.remove("over");
  if (event.dataTransfer.files[0]) upload(event.dataTransfer.files[0]);
};
window.onresize = drawCrop;
loadInfo().then(connect).then(() => { if (new URLSearchParams(location.search).has("camera")) startCamera(); });
