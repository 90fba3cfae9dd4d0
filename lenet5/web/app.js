// The draw-a-digit page: strokes on #pad go to POST /api/predict as a PNG
// while one draws; the answer fills the digit, the bars, the input the
// network received and its feature maps.  In number mode the pad is wider,
// strokes go to POST /api/read-number, and the page shows the number, each
// digit's box over the drawing and each digit's 28 x 28 input and
// probability.  No libraries: plain DOM and canvas.
"use strict";

const pad = document.getElementById("pad");
const ink = pad.getContext("2d");
const status = document.getElementById("status");
const digit = document.getElementById("digit");
const bars = document.getElementById("bars");

// One bar per digit, made once.
const barFor = [];
for (let d = 0; d < 10; d++) {
  const li = document.createElement("li");
  li.id = "bar-" + d;
  li.innerHTML = '<span class="d">' + d + '</span><span class="track"><span class="bar"></span></span>' +
                 '<span class="pct">0%</span>';
  bars.appendChild(li);
  barFor.push(li);
}

// Feature-map canvases, made once: 6 of 28 x 28 and 16 of 10 x 10.
function makeMaps(id, count, side) {
  const box = document.getElementById(id);
  const maps = [];
  for (let i = 0; i < count; i++) {
    const c = document.createElement("canvas");
    c.width = side; c.height = side;
    c.title = id + " map " + (i + 1);
    box.appendChild(c);
    maps.push(c);
  }
  return maps;
}
const conv1 = makeMaps("conv1", 6, 28);
const conv2 = makeMaps("conv2", 16, 10);

function clearPad() {
  ink.fillStyle = "#fff";
  ink.fillRect(0, 0, pad.width, pad.height);
  ink.lineCap = "round";
  ink.lineJoin = "round";
  ink.strokeStyle = "#000";
  ink.lineWidth = pad.height / 14;  // a pen stroke of about 2 MNIST pixels (of a digit as tall as the pad)
}

// Strokes: pointer events cover mouse, pen and touch alike.
let drawing = false, last = null, dirty = false;
function at(event) {
  const r = pad.getBoundingClientRect();
  return [(event.clientX - r.left) * pad.width / r.width, (event.clientY - r.top) * pad.height / r.height];
}
pad.addEventListener("pointerdown", (e) => {
  drawing = true; last = at(e); pad.setPointerCapture(e.pointerId);
  ink.beginPath(); ink.arc(last[0], last[1], ink.lineWidth / 2, 0, 2 * Math.PI); ink.fillStyle = "#000"; ink.fill();
  dirty = true; ask();
});
pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const p = at(e);
  ink.beginPath(); ink.moveTo(last[0], last[1]); ink.lineTo(p[0], p[1]); ink.stroke();
  last = p; dirty = true; ask();
});
function endStroke() { if (drawing) { drawing = false; dirty = true; ask(); } }
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

// At most one request in flight; the newest drawing is sent when it returns.
// Clear starts a new drawing: an answer about an older one is dropped.
let inFlight = false, drawingNumber = 0;
function ask() {
  if (inFlight || !dirty) return;
  dirty = false; inFlight = true;
  const asked = drawingNumber;
  const api = mode === "number" ? "api/read-number" : "api/predict";
  pad.toBlob((png) => {
    fetch(api, {method: "POST", headers: {"Content-Type": "image/png"}, body: png})
      .then((r) => r.json().then((body) => ({ok: r.ok, body: body})))
      .then(({ok, body}) => {
        if (asked !== drawingNumber) return;
        if (!ok) { status.textContent = body.error; return; }
        if (mode === "number") showNumber(body); else show(body);
      })
      .catch((err) => { status.textContent = "no answer from the server (" + err + ")"; })
      .finally(() => { inFlight = false; if (dirty) ask(); });
  }, "image/png");
}

function show(answer) {
  digit.textContent = answer.digit;
  status.textContent = "It reads " + answer.digit + ", " + Math.round(100 * answer.probabilities[answer.digit]) + "% sure.";
  answer.probabilities.forEach((p, d) => {
    const li = barFor[d];
    li.querySelector(".bar").style.width = (100 * p).toFixed(1) + "%";
    li.querySelector(".pct").textContent = Math.round(100 * p) + "%";
    li.classList.toggle("best", d === answer.digit);
  });
  paint(document.getElementById("input"), answer.input, 255);
  answer.feature_maps.conv1.forEach((m, i) => paint(conv1[i], m, null));
  answer.feature_maps.conv2.forEach((m, i) => paint(conv2[i], m, null));
}

// Rows of values onto a canvas as grey levels; scale null: each map by its own maximum.
function paint(canvas, rows, scale) {
  const g = canvas.getContext("2d");
  const img = g.createImageData(canvas.width, canvas.height);
  let top = scale;
  if (top === null) { top = 0; rows.forEach((row) => row.forEach((v) => { if (v > top) top = v; })); }
  rows.forEach((row, y) => row.forEach((v, x) => {
    const level = top > 0 ? Math.round(255 * Math.min(1, v / top)) : 0;
    const k = 4 * (y * canvas.width + x);
    img.data[k] = img.data[k + 1] = img.data[k + 2] = level;
    img.data[k + 3] = 255;
  }));
  g.putImageData(img, 0, 0);
}

function clearAll() {
  drawingNumber++; dirty = false;
  clearPad();
  [document.getElementById("input"), ...conv1, ...conv2].forEach((c) => c.getContext("2d").clearRect(0, 0, c.width, c.height));
  digit.textContent = "\u2013";
  status.textContent = mode === "number" ? "Write a number: several digits side by side."
                                         : "Draw with a mouse, a pen or a finger.";
  barFor.forEach((li) => { li.querySelector(".bar").style.width = "0"; li.querySelector(".pct").textContent = "0%";
                           li.classList.remove("best"); });
  boxes.getContext("2d").clearRect(0, 0, boxes.width, boxes.height);
  numberDigits.textContent = "";
}
document.getElementById("clear").addEventListener("click", clearAll);

// Number mode: a pad three times as wide; boxes drawn over it in its own pixels.
let mode = "digit";
const boxes = document.getElementById("boxes");
const numberDigits = document.getElementById("number-digits");
function setMode(next) {
  mode = next;
  document.body.classList.toggle("number-mode", mode === "number");
  document.getElementById("mode-digit").setAttribute("aria-pressed", String(mode === "digit"));
  document.getElementById("mode-number").setAttribute("aria-pressed", String(mode === "number"));
  pad.width = boxes.width = mode === "number" ? 840 : 280;
  pad.height = boxes.height = 280;
  clearAll();
}
document.getElementById("mode-digit").addEventListener("click", () => setMode("digit"));
document.getElementById("mode-number").addEventListener("click", () => setMode("number"));

function showNumber(answer) {
  digit.textContent = answer.number;
  status.textContent = "It reads " + answer.number + " (" + answer.digits.length + " digit" +
    (answer.digits.length === 1 ? "" : "s") + "), least sure " + Math.round(100 * answer.confidence) + "%.";
  const g = boxes.getContext("2d");
  g.clearRect(0, 0, boxes.width, boxes.height);
  g.lineWidth = 3; g.strokeStyle = "#d2552b"; g.fillStyle = "#d2552b"; g.font = "bold 20px system-ui, sans-serif";
  numberDigits.textContent = "";
  answer.digits.forEach((d, i) => {
    const [x0, y0, x1, y1] = d.box;
    g.strokeRect(x0 + 1.5, y0 + 1.5, x1 - x0 - 3, y1 - y0 - 3);
    g.fillText(String(i + 1), x0 + 4, Math.max(20, y0 - 4));
    const li = document.createElement("li");
    li.className = "number-digit";
    const c = document.createElement("canvas");
    c.width = 28; c.height = 28;
    paint(c, d.input, 255);
    const caption = document.createElement("span");
    caption.textContent = (i + 1) + ": " + d.digit + " (" + Math.round(100 * d.probability) + "%)";
    li.appendChild(c); li.appendChild(caption);
    numberDigits.appendChild(li);
  });
}

clearPad();
