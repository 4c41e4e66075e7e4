"""``edge serve``: the web demo (``web_demo/``) and one exported model, over HTTP, nothing else.

The page runs the model entirely in the browser with onnxruntime-web (WASM, SIMD; threads when the
page is cross-origin isolated) on edge's ONNX export. It reads the labels, input size and resize
mode from the model file's own metadata; the only thing this server tells it is which file to
fetch and the names of the metadata keys (``/model/manifest.json``, generated from
``edge.contract``).

What is served, and only that: the page's files under ``web_demo/public/`` (the runtime in
``public/vendor/``, copied there from ``node_modules`` by ``web_demo/build.mjs``; see
``ensure_built``), the manifest, and the chosen model under its own name. Every other path,
``..`` and encoded variants included, is a 404; files are only ever read from inside those
places (resolved paths, so a symlink out of ``public/`` is refused too).

Which model: for an export directory (or a run directory, meaning its ``export/``), the ONNX
artifact the page can run, int8 when it passed the gate, else fp16, else fp32 (``quantize``
overrides). The responses carry COOP/COEP headers so that, on localhost, the page is
cross-origin isolated and onnxruntime-web may use threads.
"""

from __future__ import annotations

import http.server
import json
import mimetypes
import os
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from edge import artifacts, contract
from edge import formats as registry
from edge.apps import find_app_dir
from edge.errors import EdgeError, one_line
from edge.formats import Format
from edge.runtimes import ort
from edge.spec import ModelSpec

APP_DIR_NAME = "web_demo"
PUBLIC_DIR = "public"  # what the browser may load
BUILD_FILE = "vendor/build.json"  # written by build.mjs: what it vendored, and which version
RUNTIME_PACKAGE = "onnxruntime-web"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
MODEL_PREFIX = "/model/"
MANIFEST_PATH = MODEL_PREFIX + "manifest.json"
# The engine the page embeds is onnxruntime compiled to WebAssembly: it runs the formats that
# onnxruntime runs here (the format records say which: ``Format.runtime``).
PAGE_ENGINE = ort.__name__.rsplit(".", 1)[-1]
# Order of preference among the page's artifacts when none is asked for (see ``choose_model``).
PREFERENCE = ("int8", "fp16", "fp32")
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".json": "application/json", ".wasm": "application/wasm", ".png": "image/png",
                 ".svg": "image/svg+xml"}
# Cross-origin isolation (SharedArrayBuffer, hence WASM threads) needs these on every response.
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
                     "Cross-Origin-Resource-Policy": "same-origin"}


def runs_in_page(fmt: Format) -> bool:
    """Whether the page's engine can run artifacts of ``fmt``."""
    return fmt.runtime == PAGE_ENGINE


# --- the app folder and its build -----------------------------------------------------------------


def resolve_app_dir(app_dir: Path | None = None) -> Path:
    """The web demo folder: ``app_dir``, else ./web_demo, else the one in this edge checkout."""
    return find_app_dir(APP_DIR_NAME, app_dir,
                        lambda d: (d / "package.json").is_file() and (d / PUBLIC_DIR / "index.html").is_file(),
                        "the edge web demo", f"package.json and {PUBLIC_DIR}/index.html")


def locked_runtime_version(app_dir: Path) -> str:
    """The onnxruntime-web version package-lock.json pins."""
    try:
        lock = json.loads((app_dir / "package-lock.json").read_text(encoding="utf-8"))
        return str(lock["packages"][f"node_modules/{RUNTIME_PACKAGE}"]["version"])
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise EdgeError(f"{app_dir / 'package-lock.json'} does not pin {RUNTIME_PACKAGE} ({one_line(exc)}).") from exc


def build_state(app_dir: Path) -> str:
    """"" when public/vendor/ holds the locked runtime complete, else what is missing."""
    public = app_dir / PUBLIC_DIR
    try:
        built = json.loads((public / BUILD_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return "the page's runtime has not been built"
    wanted = locked_runtime_version(app_dir)
    if built.get(RUNTIME_PACKAGE) != wanted:
        return f"the built runtime is {RUNTIME_PACKAGE} {built.get(RUNTIME_PACKAGE)}, package-lock.json pins {wanted}"
    missing = [name for name in built.get("files", []) if not (public / "vendor" / name).is_file()]
    return f"{', '.join(missing)} missing" if missing else ""


def ensure_built(app_dir: Path, say: Callable[[str], None] = lambda _: None) -> None:
    """Make sure ``public/vendor/`` holds the runtime package-lock.json pins: when it does not, install
    it from the npm registry (``npm ci``, no install scripts) and copy it there (``node build.mjs``)."""
    problem = build_state(app_dir)
    if not problem:
        return
    npm, node = shutil.which("npm"), shutil.which("node")
    if not npm or not node:
        raise EdgeError(f"The web demo needs a one-time build ({problem}), which needs Node.js and npm: install "
                        f"them, then run `make web-demo` (or `npm ci && npm run build` in {app_dir}).")
    installed = app_dir / "node_modules" / RUNTIME_PACKAGE / "package.json"
    try:
        version = json.loads(installed.read_text(encoding="utf-8")).get("version") if installed.is_file() else None
    except (OSError, json.JSONDecodeError):
        version = None
    steps = []
    if version != locked_runtime_version(app_dir):
        # --omit=dev: the page needs only onnxruntime-web (the devDependency is the benchmark's LiteRT.js)
        steps.append([npm, "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"])
    steps.append([node, "build.mjs"])
    say(f"Building the web demo ({problem}): " + "; ".join(" ".join([Path(s[0]).name, *s[1:]]) for s in steps))
    for step in steps:
        done = subprocess.run(step, cwd=app_dir, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise EdgeError(f"Building the web demo failed at `{' '.join(step[1:])}` in {app_dir}: "
                            f"{one_line(RuntimeError(done.stderr or done.stdout))}.")
    problem = build_state(app_dir)
    if problem:
        raise EdgeError(f"The web demo build in {app_dir} did not complete ({problem}).")


# --- which model ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chosen:
    """The model the page will run, and what the export report says of it."""

    path: Path
    fmt: Format
    quantize: str
    status: str  # the gate's verdict (edge.artifacts statuses), or "not in an export report"
    spec: ModelSpec
    others: tuple[str, ...] = ()  # the other artifacts the page could have run (names)

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


NOT_LISTED = "not in an export report"


def choose_model(source: str | Path, quantize: str | None = None) -> Chosen:
    """The model to serve for ``source``: an ONNX file, an export directory or a run directory."""
    source = Path(source).expanduser()
    if not source.exists():
        raise EdgeError(f"{source} does not exist.")
    if source.is_dir() and not registry.is_model_path(source):
        export_dir = source
        if artifacts.read_report(source) is None and (source / artifacts.DEFAULT_EXPORT_DIR).is_dir():
            export_dir = source / artifacts.DEFAULT_EXPORT_DIR  # a run directory: its default export folder
        return _from_export_dir(export_dir, quantize)
    fmt = registry.for_path(source)
    if not runs_in_page(fmt):
        raise EdgeError(f"The web demo runs ONNX models (onnxruntime-web), not {fmt.display_name}; export one with "
                        "`edge export RUN --format onnx` and serve that.")
    listed = next((item for item in artifacts.listed_artifacts(source.parent)
                   if item.path.resolve() == source.resolve()), None)
    kind = listed.quantize if listed else registry.kind_from_name(source, fmt)
    if quantize and kind and quantize != kind:
        raise EdgeError(f"{source.name} is {kind}, not {quantize}; serve the export directory to choose by kind.")
    return Chosen(source.resolve(), fmt, kind or "?", listed.status if listed else NOT_LISTED, _spec(source, fmt))


def _from_export_dir(export_dir: Path, quantize: str | None) -> Chosen:
    if artifacts.read_report(export_dir) is None:
        raise EdgeError(f"{export_dir} is not an export directory (no {artifacts.REPORT_FILE}); pass one from "
                        "`edge export`, a run directory, or an .onnx file.")
    usable = [item for item in artifacts.listed_artifacts(export_dir) if runs_in_page(registry.get(item.format))]
    if not usable:
        raise EdgeError(f"{export_dir} holds no usable ONNX model for the web demo; export one with "
                        "`edge export RUN --format onnx`.")
    if quantize:
        matching = [item for item in usable if item.quantize == quantize]
        if not matching:
            kinds = ", ".join(sorted({item.quantize for item in usable}))
            raise EdgeError(f"{export_dir} holds no usable {quantize} ONNX model; it has {kinds}.")
        usable_sorted = matching
    else:
        usable_sorted = sorted(usable, key=_preference)
    best = usable_sorted[0]
    fmt = registry.get(best.format)
    others = tuple(item.path.name for item in usable if item.path != best.path)
    return Chosen(best.path.resolve(), fmt, best.quantize, best.status, _spec(best.path, fmt), others)


def _preference(item: artifacts.Listed) -> tuple:
    """int8 only when it passed the gate; then fp16, then fp32 (passed before unverified)."""
    verified = item.status == artifacts.PASSED
    if item.quantize == PREFERENCE[0] and verified:
        return (0, item.path.name)
    rank = PREFERENCE.index(item.quantize) if item.quantize in PREFERENCE[1:] else len(PREFERENCE)
    return (rank, not verified, item.path.name)


def _spec(path: Path, fmt: Format) -> ModelSpec:
    return contract.spec_from_metadata(registry.read_metadata(path, fmt), str(path))


def contract_keys() -> dict[str, str]:
    """The metadata key names the page reads, from edge.contract (``KEY_SPEC`` -> ``spec``)."""
    return {name[len("KEY_"):].lower(): value for name, value in vars(contract).items()
            if name.startswith("KEY_") and isinstance(value, str)}


def manifest(chosen: Chosen) -> dict:
    """What ``/model/manifest.json`` says: which file to fetch and how to read its metadata."""
    from edge import __version__

    return {
        "model": MODEL_PREFIX.lstrip("/") + quote(chosen.path.name),  # relative to the page
        "file": chosen.path.name,
        "format": chosen.fmt.display_name,
        "quantize": chosen.quantize,
        "status": chosen.status,
        "size_bytes": chosen.size_bytes,
        "contract": contract_keys(),
        "served_by": f"edge {__version__}",
    }


# --- the server ---------------------------------------------------------------------------------------


def _make_handler(public: Path, chosen: Chosen, manifest_bytes: bytes):
    public = public.resolve()
    model_url = MODEL_PREFIX + chosen.path.name

    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "edge-serve"
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):
            pass  # quiet: the page's requests are not news

        def do_GET(self):
            self._respond(head=False)

        def do_HEAD(self):
            self._respond(head=True)

        def _method_not_allowed(self):
            self._send(405, b"Method not allowed\n", "text/plain; charset=utf-8", extra={"Allow": "GET, HEAD"})

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _method_not_allowed  # noqa: N815

        def _respond(self, head: bool) -> None:
            target = self._resolve(self.path)
            if target is None:
                self._send(404, b"Not found\n", "text/plain; charset=utf-8", head=head)
            elif isinstance(target, bytes):
                self._send(200, target, CONTENT_TYPES[".json"], head=head)
            else:
                self._send_file(target, head)

        def _resolve(self, raw: str) -> Path | bytes | None:
            """The file (or generated bytes) a request path names, None for anything else."""
            path = unquote(urlsplit(raw).path)
            if not path.startswith("/") or "\\" in path or "\x00" in path:
                return None
            if path == MANIFEST_PATH:
                return manifest_bytes
            if path == model_url:
                return chosen.path
            if path.startswith(MODEL_PREFIX):
                return None
            if path.endswith("/"):
                path += "index.html"
            parts = path.split("/")[1:]
            if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
                return None
            candidate = (public / Path(*parts)).resolve()
            if public not in candidate.parents or not candidate.is_file():
                return None
            return candidate

        def _headers(self, status: int, content_type: str, length: int, extra: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(length))
            self.send_header("Cache-Control", "no-cache")
            self.send_header("X-Content-Type-Options", "nosniff")
            for key, value in {**ISOLATION_HEADERS, **(extra or {})}.items():
                self.send_header(key, value)
            self.end_headers()

        def _send(self, status: int, body: bytes, content_type: str, head: bool = False, extra: dict | None = None):
            self._headers(status, content_type, len(body), extra)
            if not head:
                self.wfile.write(body)

        def _send_file(self, path: Path, head: bool) -> None:
            content_type = CONTENT_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0]
            try:
                with path.open("rb") as handle:
                    size = os.fstat(handle.fileno()).st_size
                    self._headers(200, content_type or "application/octet-stream", size)
                    if not head:
                        shutil.copyfileobj(handle, self.wfile, 1 << 20)
            except OSError:
                self.close_connection = True

        def handle(self):
            try:
                super().handle()
            except (ConnectionResetError, BrokenPipeError, TimeoutError):
                pass

    return Handler


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, family):
        self.address_family = family
        super().__init__(address, handler)


@dataclass
class DemoServer:
    """A running (or ready) ``edge serve``: the page and one model on ``host:port``."""

    chosen: Chosen
    app_dir: Path
    host: str
    port: int
    _server: _Server | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The address this machine's browser opens (loopback for a wildcard host)."""
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return f"http://{_bracket(host)}:{self.port}/"

    def urls(self) -> list[tuple[str, str]]:
        """(what, URL) pairs to print: this machine, and the LAN addresses for a wildcard host."""
        found = [("this machine", self.url)]
        if self.host in ("", "0.0.0.0", "::"):
            found += [("phones on the same network", f"http://{_bracket(ip)}:{self.port}/") for ip in lan_addresses()]
        return found

    def serve_forever(self) -> None:
        """Serve until Ctrl-C (or SIGTERM); then close the socket and return."""
        assert self._server is not None
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            self._server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            self._server.server_close()

    def start(self) -> DemoServer:
        """Serve from a background thread (for tests and the browser runtime); ``stop()`` ends it."""
        assert self._server is not None
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="edge-serve", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
        self._server = None


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def open_server(source: str | Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                quantize: str | None = None, app_dir: Path | None = None,
                say: Callable[[str], None] = lambda _: None) -> DemoServer:
    """Choose the model, build the page if needed, and bind ``host:port`` (0: any free port).

    Returns the bound server; call ``serve_forever()`` (blocks until Ctrl-C) or ``start()``.
    """
    chosen = choose_model(source, quantize)
    app = resolve_app_dir(app_dir)
    ensure_built(app, say)
    if not 0 <= int(port) <= 65535:
        raise EdgeError(f"--port must be between 0 and 65535, not {port}.")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    handler = _make_handler(app / PUBLIC_DIR, chosen, json.dumps(manifest(chosen), indent=2).encode("utf-8"))
    try:
        server = _Server((host, int(port)), handler, family)
    except OSError as exc:
        if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise EdgeError(f"Port {port} on {host} is already in use; pass another --port (or --port 0 for any "
                            "free one).") from exc
        raise EdgeError(f"Cannot listen on {host}:{port} ({exc.strerror or one_line(exc)}).") from exc
    return DemoServer(chosen, app, host, server.server_address[1], server)


def lan_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses, found without sending any packet."""
    found: list[str] = []
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.append(str(info[4][0]))
    except OSError:
        pass
    ip_tool = shutil.which("ip")
    if ip_tool:
        try:
            out = subprocess.run([ip_tool, "-4", "-o", "addr", "show", "scope", "global"], capture_output=True,
                                 text=True, timeout=5).stdout
            found += [line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3]
        except (OSError, subprocess.SubprocessError):
            pass
    return [ip for ip in dict.fromkeys(found) if not ip.startswith("127.")]


SECURE_CONTEXT_NOTE = (
    "Browsers allow the camera only in a secure context (https:// or localhost). Over a plain-http LAN "
    "address the photo picker works but the camera does not, and the page runs on one thread (threads need "
    "cross-origin isolation, which also needs a secure context). For the camera on a phone: open the page "
    "through localhost (Android: `adb reverse tcp:PORT tcp:PORT`, then http://localhost:PORT/), or put an "
    "HTTPS reverse proxy in front of this server."
)
