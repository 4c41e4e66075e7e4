// The page: photo picker and camera in, top-3 with bars, per-inference latency and the model's
// facts out. The model logic lives in edge-model.js; `window.edgeDemo` exposes the same calls to
// edge's tests and to `edge bench --runtime web` (edge.runtimes.web).
import { decodeFile, inputPixels, loadModel, topK } from "./edge-model.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const canvas = $("work");
let model = null;
let cameraStream = null;
let cameraBusy = false;

const demo = {
  results: [], // one entry per classified picture: {name, top, ms, preprocessMs}
  lastInput: null, // the input tensor (uint8 RGB, H x W x 3) of the last picture
  lastProbs: null,
  model: null,
  error: null,
};
window.edgeDemo = demo;

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function formatBytes(n) {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(0)} kB`;
}

function showInfo(manifest) {
  const { spec, runtime } = model;
  const [h, w] = spec.input_size;
  const rows = [
    ["Model", `${spec.name} (version ${spec.model_version})`],
    ["Backbone", spec.alpha ? `${spec.backbone}, alpha ${spec.alpha}` : spec.backbone],
    ["Classes", `${spec.labels.length}: ${spec.labels.join(", ")}`],
    ["Input", `${w} × ${h} RGB pixels, resize ${spec.resize}`],
    ["File", `${manifest.file} (${manifest.format} ${manifest.quantize}, ${formatBytes(model.bytes)}, gate: ${manifest.status})`],
    ["Runtime", `${runtime.name} ${runtime.version}, ${runtime.backend}, ${runtime.threads} thread${runtime.threads > 1 ? "s" : ""}` +
      (runtime.isolated ? "" : " (not cross-origin isolated: one thread)")],
    ["Loaded in", `${model.loadMs.toFixed(0)} ms`],
    ["Source run", model.metadata[manifest.contract.source_run] || (spec.run_id ? `run ${spec.run_id}` : "–")],
    ["Exported by", `edge ${model.metadata[manifest.contract.edge_version] || "?"}`],
  ];
  const dl = $("model-info");
  dl.replaceChildren();
  for (const [key, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = key;
    const dd = document.createElement("dd");
    dd.textContent = value;
    dd.dataset.field = key.toLowerCase().replace(/\s+/g, "-");
    dl.append(dt, dd);
  }
  $("model-name").textContent = `${spec.name} · ${spec.labels.length} classes`;
}

function showPrediction(top, ms, preprocessMs) {
  const list = $("top3");
  list.replaceChildren();
  for (const { label, p } of top) {
    const li = document.createElement("li");
    li.innerHTML = '<div class="row"><span class="label"></span><span class="p"></span></div><div class="bar"><span></span></div>';
    li.querySelector(".label").textContent = label;
    li.querySelector(".p").textContent = `${(p * 100).toFixed(1)}%`;
    li.querySelector(".bar > span").style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
    list.append(li);
  }
  $("latency").textContent = `inference ${ms.toFixed(1)} ms · resize ${preprocessMs.toFixed(1)} ms`;
  $("latency").dataset.ms = String(ms);
}

async function classify(source, width, height) {
  const t0 = performance.now();
  const pixels = inputPixels(source, width, height, model.spec, canvas);
  const t1 = performance.now();
  const probs = await model.run(pixels);
  const ms = performance.now() - t1;
  demo.lastInput = pixels;
  demo.lastProbs = Array.from(probs);
  const top = topK(probs, model.spec.labels, 3);
  showPrediction(top, ms, t1 - t0);
  return { top, ms, preprocessMs: t1 - t0, probs: demo.lastProbs };
}

async function classifyFile(file) {
  const bitmap = await decodeFile(file);
  try {
    const photo = $("photo");
    if (photo.src) URL.revokeObjectURL(photo.src);
    photo.src = URL.createObjectURL(file);
    photo.hidden = false;
    $("placeholder").hidden = true;
    const result = await classify(bitmap, bitmap.width, bitmap.height);
    const entry = { name: file.name, ...result };
    demo.results.push(entry);
    const li = document.createElement("li");
    li.textContent = `${file.name}: ${result.top[0].label} ${(result.top[0].p * 100).toFixed(0)}% (${result.ms.toFixed(1)} ms)`;
    $("history").prepend(li);
    while ($("history").children.length > 50) $("history").lastChild.remove();
    $("history-count").textContent = String(demo.results.length);
    return entry;
  } finally {
    bitmap.close();
  }
}

async function onPick(event) {
  const files = Array.from(event.target.files || []);
  if (!files.length) return;
  stopCamera();
  for (const [i, file] of files.entries()) {
    setStatus(files.length > 1 ? `Classifying photo ${i + 1} of ${files.length}…` : `Classifying ${file.name}…`);
    try {
      await classifyFile(file);
    } catch (err) {
      demo.results.push({ name: file.name, error: String(err) });
      setStatus(`${file.name}: not a picture this browser can decode (${err.message || err}).`, true);
      continue;
    }
  }
  if (!$("status").classList.contains("error")) {
    setStatus(files.length > 1 ? `Classified ${files.length} photos.` : `Classified ${files[0].name}.`);
  }
  event.target.value = "";
}

// --- camera -------------------------------------------------------------------------------------

async function startCamera() {
  try {
    // The back camera where there is one ("environment"); any camera otherwise.
    cameraStream = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } },
      audio: false,
    });
  } catch (err) {
    setStatus(`The camera could not start (${err.name || err}); the photo picker still works.`, true);
    return;
  }
  const video = $("video");
  video.srcObject = cameraStream;
  await video.play();
  video.hidden = false;
  $("photo").hidden = true;
  $("placeholder").hidden = true;
  $("camera").textContent = "Stop camera";
  setStatus("Camera: classifying live frames.");
  const step = async () => {
    if (!cameraStream) return;
    if (!cameraBusy && video.videoWidth) {
      cameraBusy = true;
      try {
        await classify(video, video.videoWidth, video.videoHeight);
      } finally {
        cameraBusy = false;
      }
    }
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(step);
    else requestAnimationFrame(step);
  };
  step();
}

function stopCamera() {
  if (!cameraStream) return;
  for (const track of cameraStream.getTracks()) track.stop();
  cameraStream = null;
  $("video").hidden = true;
  $("camera").textContent = "Start camera";
}

function setUpCamera() {
  const button = $("camera");
  const note = $("camera-note");
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    button.disabled = true;
    note.hidden = false;
    note.textContent = "The camera needs a secure context (https:// or localhost); this address is plain http, " +
      "so only the photo picker works here.";
    return;
  }
  button.disabled = false;
  button.addEventListener("click", () => (cameraStream ? stopCamera() : startCamera()));
}

// --- the calls edge's tests and `edge bench --runtime web` use ------------------------------------

function fromBase64(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

/** Probabilities (flat, count x classes) for `count` images already at the input size (uint8 RGB). */
demo.predictBase64 = async (base64, count) => Array.from(await model.run(fromBase64(base64), count));

/** Milliseconds of each timed session.run on one prepared input, after `warmup` untimed runs. */
demo.timeRuns = async (base64, count, warmup, runs, budgetMs, minRuns = 5) => {
  const pixels = fromBase64(base64);
  for (let i = 0; i < warmup; i++) await model.run(pixels, count);
  const times = [];
  const deadline = performance.now() + budgetMs;
  for (let i = 0; i < Math.max(runs, minRuns); i++) {
    const t = performance.now();
    await model.run(pixels, count);
    const end = performance.now();
    times.push(end - t);
    if (i + 1 >= minRuns && (i + 1 >= runs || end >= deadline)) break;
  }
  return times;
};

// --- start --------------------------------------------------------------------------------------

async function main() {
  const response = await fetch("model/manifest.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`no model is being served (${response.status})`);
  const manifest = await response.json();
  const threads = Number(params.get("threads")) || undefined;
  model = await loadModel(manifest, { threads });
  demo.model = { spec: model.spec, runtime: model.runtime, file: manifest.file, quantize: manifest.quantize, loadMs: model.loadMs };
  showInfo(manifest);
  $("picker").disabled = false;
  $("picker").addEventListener("change", onPick);
  setUpCamera();
  setStatus("Ready: pick photos or start the camera.");
  return demo.model;
}

demo.ready = main().catch((err) => {
  demo.error = String(err.message || err);
  setStatus(`Could not load the model: ${demo.error}`, true);
  $("model-name").textContent = "";
  throw err;
});
