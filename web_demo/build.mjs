// Copies the browser runtime the page needs from node_modules/ (installed by `npm ci` from
// package-lock.json) into public/vendor/, the folder `edge serve` serves beside the page.
// public/vendor/ is git-ignored: nothing the page loads comes from a CDN, and nothing vendored
// is committed. `edge serve` and `make web-demo` run this; so does `npm run build`.
//
// Only the WASM build of onnxruntime-web is copied (the page asks for no WebGPU/WebGL backend):
// its ES module, and the SIMD + threads WebAssembly binary with its loader (the loader also starts
// the worker threads when the page is cross-origin isolated).
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, "node_modules", "onnxruntime-web");
const files = ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"];
const out = join(here, "public", "vendor", "onnxruntime-web");

const version = JSON.parse(readFileSync(join(pkg, "package.json"), "utf8")).version;
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
for (const name of files) copyFileSync(join(pkg, "dist", name), join(out, name));
// onnxruntime-web is MIT licensed (package.json "license"); its package ships no LICENSE file to copy.
// What was copied, read back by `edge serve` (edge.serve) to check the build is complete and current.
writeFileSync(join(here, "public", "vendor", "build.json"),
  JSON.stringify({ "onnxruntime-web": version, files: files.map((f) => `onnxruntime-web/${f}`) }, null, 2) + "\n");
console.log(`vendored onnxruntime-web ${version} into public/vendor/`);
