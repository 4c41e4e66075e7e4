// The model side of the web demo: read an edge ONNX export's own metadata, resize a picture exactly
// as edge's training did, run the model with onnxruntime-web (WASM) and rank the classes.
// Nothing here names a label, an input size, a normalization constant or a metadata key: the labels,
// input size and resize mode come from the model file's metadata, and the key names from the
// manifest `edge serve` generates from edge.contract.

const ORT_DIR = new URL("./vendor/onnxruntime-web/", import.meta.url).href;

// --- the model's own metadata -----------------------------------------------------------------

/**
 * The key/value pairs of an ONNX file's `metadata_props` (ModelProto field 14, a repeated
 * StringStringEntryProto: key = field 1, value = field 2), read with a minimal protobuf walker so
 * the page needs no protobuf library. Other fields, the graph and its weights included, are skipped.
 */
export function readOnnxMetadata(bytes) {
  const decoder = new TextDecoder();
  const props = {};
  let pos = 0;
  const varint = (end) => {
    let value = 0;
    let factor = 1;
    for (;;) {
      if (pos >= end) throw new Error("not an ONNX model (truncated protobuf)");
      const byte = bytes[pos++];
      value += (byte & 0x7f) * factor;
      if (!(byte & 0x80)) return value;
      factor *= 128;
    }
  };
  const skip = (wire, end) => {
    if (wire === 0) varint(end);
    else if (wire === 1) pos += 8;
    else if (wire === 2) {
      const length = varint(end); // read before adding: `pos += varint()` would add to the old pos
      pos += length;
    }
    else if (wire === 5) pos += 4;
    else throw new Error(`not an ONNX model (protobuf wire type ${wire})`);
    if (pos > end) throw new Error("not an ONNX model (truncated protobuf)");
  };
  while (pos < bytes.length) {
    const tag = varint(bytes.length);
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (field === 14 && wire === 2) {
      const length = varint(bytes.length);
      const stop = pos + length;
      const entry = { key: "", value: "" };
      while (pos < stop) {
        const innerTag = varint(stop);
        const innerField = Math.floor(innerTag / 8);
        if ((innerField === 1 || innerField === 2) && innerTag % 8 === 2) {
          const length = varint(stop);
          const text = decoder.decode(bytes.subarray(pos, pos + length));
          pos += length;
          entry[innerField === 1 ? "key" : "value"] = text;
        } else {
          skip(innerTag % 8, stop);
        }
      }
      props[entry.key] = entry.value;
    } else {
      skip(wire, bytes.length);
    }
  }
  return props;
}

/** The ModelSpec the model was exported with (the JSON under the contract's spec key). */
export function specFromMetadata(metadata, contract) {
  const text = metadata[contract.spec];
  if (!text) throw new Error("this model carries no edge metadata; export it with `edge export RUN --format onnx`");
  const spec = JSON.parse(text);
  if (!Array.isArray(spec.labels) || !spec.labels.length || !Array.isArray(spec.input_size)) {
    throw new Error("the model's edge metadata has no labels or input size");
  }
  if (!(spec.resize in RESIZERS)) {
    throw new Error(`this page cannot reproduce the model's training resize '${spec.resize}'`);
  }
  return spec;
}

// --- resize: the same pixels as edge.data.images.load_image --------------------------------------

// load_image stretches the whole picture to the input size with Pillow's bilinear filter (no crop,
// aspect not kept). Pillow's "bilinear" is a separable triangle filter whose support grows with the
// reduction factor (an antialiased resize, unlike a canvas's bilinear sampling); these functions
// are Pillow's Resample.c (precompute_coeffs, normalize_coeffs_8bpc, ImagingResampleHorizontal/
// Vertical_8bpc) transcribed: the same fixed-point coefficients, horizontal pass first, each pass
// rounded to 8 bits.
const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;

function triangle(x) {
  x = Math.abs(x);
  return x < 1 ? 1 - x : 0;
}

function coefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 1 * filterscale; // the bilinear filter's support is 1
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      k[x] = triangle((x + xmin - center + 0.5) * ss);
      ww += k[x];
    }
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0 ? k[x] / ww : k[x];
      kk[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(value) {
  if (value >= ONE * 256) return 255;
  if (value <= 0) return 0;
  return Math.floor(value / ONE);
}

/**
 * `rgba` (width x height, 4 bytes per pixel, as canvas getImageData gives) stretched to
 * outW x outH with Pillow's bilinear filter; returns packed RGB (outH x outW x 3).
 */
export function stretchBilinear(rgba, width, height, outW, outH) {
  let src = rgba;
  let srcW = width;
  let stride = 4;
  let rowOffset = 0;
  const vert = coefficients(height, outH);
  const needVertical = outH !== height;
  if (outW !== width) {
    // Horizontal pass over the rows the vertical pass will read.
    const first = needVertical ? vert.bounds[0] : 0;
    const last = needVertical ? vert.bounds[outH * 2 - 2] + vert.bounds[outH * 2 - 1] : height;
    const { ksize, bounds, kk } = coefficients(width, outW);
    const tmp = new Uint8Array((last - first) * outW * 3);
    for (let y = first; y < last; y++) {
      const row = y * width * 4;
      const outRow = (y - first) * outW * 3;
      for (let xx = 0; xx < outW; xx++) {
        const xmin = bounds[xx * 2];
        const xmax = bounds[xx * 2 + 1];
        const base = xx * ksize;
        let r = ONE / 2;
        let g = ONE / 2;
        let b = ONE / 2;
        for (let x = 0; x < xmax; x++) {
          const w = kk[base + x];
          const p = row + (x + xmin) * 4;
          r += src[p] * w;
          g += src[p + 1] * w;
          b += src[p + 2] * w;
        }
        tmp[outRow + xx * 3] = clip8(r);
        tmp[outRow + xx * 3 + 1] = clip8(g);
        tmp[outRow + xx * 3 + 2] = clip8(b);
      }
    }
    src = tmp;
    srcW = outW;
    stride = 3;
    rowOffset = first;
  }
  const out = new Uint8Array(outH * outW * 3);
  if (!needVertical) {
    for (let i = 0, o = 0; o < out.length; i += stride, o += 3) {
      out[o] = src[i];
      out[o + 1] = src[i + 1];
      out[o + 2] = src[i + 2];
    }
    return out;
  }
  const { ksize, bounds, kk } = vert;
  for (let yy = 0; yy < outH; yy++) {
    const ymin = bounds[yy * 2] - rowOffset;
    const ymax = bounds[yy * 2 + 1];
    const base = yy * ksize;
    for (let xx = 0; xx < outW; xx++) {
      let r = ONE / 2;
      let g = ONE / 2;
      let b = ONE / 2;
      for (let y = 0; y < ymax; y++) {
        const w = kk[base + y];
        const p = ((y + ymin) * srcW + xx) * stride;
        r += src[p] * w;
        g += src[p + 1] * w;
        b += src[p + 2] * w;
      }
      const o = (yy * outW + xx) * 3;
      out[o] = clip8(r);
      out[o + 1] = clip8(g);
      out[o + 2] = clip8(b);
    }
  }
  return out;
}

// MediaPipe Tasks' CPU resize (edge.data.resize.mediapipe_cpu, a model trained with --resize
// stretch-mediapipe): output pixel x samples the source at x * (in / out), pixel corners aligned,
// the position rounded to 1/32 pixel (half to even, as OpenCV's cvRound), edges clamped, the four
// neighbours blended in double precision and rounded half up: the same arithmetic as the Python.
function roundHalfEven(v) {
  const f = Math.floor(v);
  const d = v - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

function samples(outSize, inSize) {
  const low = new Int32Array(outSize);
  const high = new Int32Array(outSize);
  const frac = new Float64Array(outSize);
  for (let i = 0; i < outSize; i++) {
    const pos = roundHalfEven(i * (inSize / outSize) * 32) / 32;
    const base = Math.floor(pos);
    frac[i] = pos - base;
    low[i] = Math.min(Math.max(base, 0), inSize - 1);
    high[i] = Math.min(low[i] + 1, inSize - 1);
  }
  return { low, high, frac };
}

/** `rgba` (width x height) stretched to outW x outH as MediaPipe Tasks does; packed RGB. */
export function stretchMediapipe(rgba, width, height, outW, outH) {
  const out = new Uint8Array(outH * outW * 3);
  const same = outW === width && outH === height;
  const ys = samples(outH, height);
  const xs = samples(outW, width);
  for (let yy = 0; yy < outH; yy++) {
    const r0 = ys.low[yy] * width * 4;
    const r1 = ys.high[yy] * width * 4;
    const fy = ys.frac[yy];
    for (let xx = 0; xx < outW; xx++) {
      const c0 = xs.low[xx] * 4;
      const c1 = xs.high[xx] * 4;
      const fx = xs.frac[xx];
      for (let c = 0; c < 3; c++) {
        const o = (yy * outW + xx) * 3 + c;
        if (same) {
          out[o] = rgba[(yy * width + xx) * 4 + c];
          continue;
        }
        const top = rgba[r0 + c0 + c] * (1 - fx) + rgba[r0 + c1 + c] * fx;
        const bottom = rgba[r1 + c0 + c] * (1 - fx) + rgba[r1 + c1 + c] * fx;
        out[o] = Math.min(255, Math.max(0, Math.floor(top * (1 - fy) + bottom * fy + 0.5)));
      }
    }
  }
  return out;
}

// ModelSpec.resize -> how to reproduce it. A model trained with a resize missing here is refused.
export const RESIZERS = { "stretch-bilinear": stretchBilinear, "stretch-mediapipe": stretchMediapipe };

/**
 * Pixels of a drawable (ImageBitmap, video, canvas) as training saw them: composited on white
 * (edge.data.images.to_rgb does that to transparent pictures), then resized per the spec.
 */
export function inputPixels(source, width, height, spec, canvas) {
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, width, height);
  ctx.drawImage(source, 0, 0, width, height);
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const [h, w] = spec.input_size;
  return RESIZERS[spec.resize](rgba, width, height, w, h);
}

/** A picked file decoded the way edge decodes it: EXIF orientation applied, no colour management. */
export function decodeFile(file) {
  return createImageBitmap(file, { imageOrientation: "from-image", colorSpaceConversion: "none", premultiplyAlpha: "none" });
}

// --- the runtime ------------------------------------------------------------------------------

/** The top `k` classes of a probability vector: [{label, index, p}], most probable first. */
export function topK(probs, labels, k = 3) {
  return Array.from(probs, (p, index) => ({ label: labels[index], index, p }))
    .sort((a, b) => b.p - a.p)
    .slice(0, k);
}

/**
 * Loads onnxruntime-web (WASM, SIMD; threads when the page is cross-origin isolated), fetches the
 * model the manifest names, reads its metadata and creates the session.
 */
export async function loadModel(manifest, { threads } = {}) {
  const ort = await import(`${ORT_DIR}ort.wasm.min.mjs`);
  ort.env.wasm.wasmPaths = ORT_DIR;
  // Threads need SharedArrayBuffer, which browsers give only to cross-origin isolated pages
  // (edge serve sends the COOP/COEP headers; a LAN address over plain HTTP is not a secure
  // context, so there the page runs on one thread).
  if (!crossOriginIsolated) ort.env.wasm.numThreads = 1;
  else if (threads) ort.env.wasm.numThreads = threads;
  const started = performance.now();
  const response = await fetch(manifest.model);
  if (!response.ok) throw new Error(`could not fetch the model (${response.status})`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const metadata = readOnnxMetadata(bytes);
  const spec = specFromMetadata(metadata, manifest.contract);
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  const inputName = session.inputNames[0];
  const outputName = session.outputNames[0];
  const inputMeta = session.inputMetadata?.[0];
  const floatInput = inputMeta?.type === "float32";
  const [h, w] = spec.input_size;
  const loadMs = performance.now() - started;

  async function run(pixels, count = 1) {
    const data = floatInput ? Float32Array.from(pixels) : pixels;
    const feeds = { [inputName]: new ort.Tensor(floatInput ? "float32" : "uint8", data, [count, h, w, 3]) };
    const output = await session.run(feeds);
    const result = output[outputName];
    const probs = result.data;
    result.dispose?.();
    return probs;
  }

  return {
    ort,
    spec,
    metadata,
    session,
    run,
    loadMs,
    bytes: bytes.length,
    runtime: {
      name: "onnxruntime-web",
      version: ort.env.versions?.web ?? "",
      backend: "WASM SIMD",
      threads: ort.env.wasm.numThreads || 1,
      isolated: crossOriginIsolated,
    },
  };
}
