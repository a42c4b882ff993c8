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
}

function showSliders() {
  $("hold-value").textContent = Number($("hold").value).toFixed(2);
  $("confidence-value").textContent = Number($("confidence").value).toFixed(2);
}

function sendSettings() {
  showSliders();
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({type: "settings", hold: Number($("hold").value),
                                min_confidence: Number($("confidence").value)}));
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
    grab.toBlob((blob) => { socket.send(blob); sentAt.push(performance.now()); }, "image/jpeg", 0.85);
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

$("start").onclick = startCamera;
$("clear").onclick = () => socket && socket.send(JSON.stringify({type: "clear"}));
$("copy").onclick = () => navigator.clipboard.writeText($("text").textContent);
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
