"""The browser runtime: an edge ONNX model run by the web demo page in headless Chromium.

``load(path, threads)`` serves the model and the page on 127.0.0.1 (``edge.serve``, any free port),
opens it in headless Chromium driven by Playwright, and returns a Predictor whose work happens in
the page: onnxruntime-web (WebAssembly, SIMD; ``threads`` through the page's ``?threads=``, which
it honours because edge serve makes it cross-origin isolated). Images go in already at the model's
input size (uint8 RGB), so this measures the engine in the browser, not the page's resize (the
tests check that separately). ``time_calls`` times ``session.run`` with the page's own clock, so no
round trip between Python and the browser is in the numbers.

Needs the ``playwright`` package (``pip install playwright``; its browser download is not used)
and a Chromium: ``$EDGE_CHROMIUM``, else /usr/bin/chromium (Debian's ``chromium`` package), else
one on the PATH.
"""

from __future__ import annotations

import base64
import os
import shutil
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.errors import EdgeError, one_line
from edge.runtimes import BATCH, empty

NAME = "onnxruntime-web"
KIND = "web"  # edge bench --runtime web
# Headless Chromium as root on a machine with no network: no sandbox (root), no GPU, and none of
# the background connections (component updates, sync, QUIC probes) a closed network refuses.
CHROMIUM_FLAGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage")
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
LOAD_TIMEOUT_MS = 180_000  # compiling 14 MB of WebAssembly on a busy 2-core machine takes a while


def runs(fmt) -> bool:
    """Whether this runtime runs artifacts of the format record ``fmt`` (the page's engine decides)."""
    from edge.serve import runs_in_page

    return runs_in_page(fmt)


def formats_note() -> str:
    """The display names of the formats this runtime runs ("ONNX")."""
    from edge import formats

    return ", ".join(fmt.display_name for fmt in formats.all_formats() if runs(fmt))


def find_chromium() -> str | None:
    """The Chromium binary to drive: $EDGE_CHROMIUM, else Debian's, else one on the PATH."""
    configured = os.environ.get("EDGE_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else None
    for candidate in CHROMIUM_CANDIDATES:
        found = candidate if Path(candidate).is_file() else shutil.which(candidate)
        if found:
            return found
    return None


def unavailable_reason() -> str:
    """"" when the browser runtime can start here, else why not (one sentence)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the browser runtime needs the playwright package (pip install playwright)"
    if find_chromium() is None:
        return ("the browser runtime needs Chromium (Debian: apt-get install chromium; or set EDGE_CHROMIUM to a "
                "Chromium binary)")
    return ""


# Playwright's sync API runs one driver per thread: browsers launched in this process share it,
# and it stops when the last one closes.
_DRIVER: dict = {"driver": None, "users": 0}


def launch_browser():
    """(driver, browser): headless Chromium started by Playwright; close with ``close_browser``."""
    reason = unavailable_reason()
    if reason:
        raise EdgeError(reason[0].upper() + reason[1:] + ".")
    from playwright.sync_api import sync_playwright

    if _DRIVER["driver"] is None:
        _DRIVER["driver"] = sync_playwright().start()
    driver = _DRIVER["driver"]
    _DRIVER["users"] += 1
    try:
        browser = driver.chromium.launch(executable_path=find_chromium(), headless=True, args=list(CHROMIUM_FLAGS))
    except Exception as exc:
        _release(driver)
        raise EdgeError(f"Chromium ({find_chromium()}) did not start: {one_line(exc)}.") from exc
    return driver, browser


def close_browser(driver, browser) -> None:
    try:
        browser.close()
    finally:
        _release(driver)


def _release(driver) -> None:
    _DRIVER["users"] -= 1
    if _DRIVER["users"] <= 0 and _DRIVER["driver"] is driver:
        _DRIVER.update(driver=None, users=0)
        driver.stop()


def open_page(browser, url: str):
    """A page at ``url`` with edge's demo loaded and its model ready; EdgeError with the page's reason."""
    page = browser.new_page()
    page.set_default_timeout(LOAD_TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    try:
        page.wait_for_function("window.edgeDemo && (window.edgeDemo.model || window.edgeDemo.error)")
    except Exception as exc:
        raise EdgeError(f"The web demo did not load its model in time ({one_line(exc)}).") from exc
    failure = page.evaluate("window.edgeDemo.error")
    if failure:
        raise EdgeError(f"The web demo could not load the model: {failure}.")
    return page


class WebPredictor:
    """uint8 RGB images -> probabilities, computed by onnxruntime-web in headless Chromium."""

    def __init__(self, path: Path, threads: int | None = None, app_dir: Path | None = None):
        from edge import serve

        self.path = Path(path)
        server = serve.open_server(self.path, serve.DEFAULT_HOST, 0, app_dir=app_dir).start()
        handles: dict = {"server": server}
        self._finalizer = weakref.finalize(self, _shutdown, handles)
        try:
            driver, browser = launch_browser()
            handles.update(driver=driver, browser=browser)
            url = server.url + (f"?threads={int(threads)}" if threads else "")
            self._page = open_page(browser, url)
            info = self._page.evaluate("window.edgeDemo.model")
        except BaseException:
            self._finalizer()
            raise
        self.spec = server.chosen.spec
        if list(info["spec"]["labels"]) != list(self.spec.labels):  # the page read the file's own metadata
            raise EdgeError(f"The web demo read other labels from {self.path.name} than edge did.")
        runtime = info["runtime"]
        self.threads = int(runtime["threads"])
        self.browser_version = browser.version
        self.runtime = (f"{NAME} {runtime['version']} (Chromium {browser.version.split('.')[0]}, "
                        f"{runtime['backend']}, {self.threads} threads)")

    def _images(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.uint8)
        h, w = self.spec.input_size
        if images.ndim != 4 or images.shape[1:] != (h, w, 3):
            raise EdgeError(f"The web runtime takes uint8 images of shape (N, {h}, {w}, 3), not {images.shape}.")
        return images

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = self._images(images)
        if len(images) == 0:
            return empty(self.spec)
        out = []
        for start in range(0, len(images), BATCH):
            chunk = images[start : start + BATCH]
            flat = self._page.evaluate("([data, n]) => window.edgeDemo.predictBase64(data, n)",
                                       [base64.b64encode(chunk.tobytes()).decode("ascii"), len(chunk)])
            out.append(np.asarray(flat, np.float32).reshape(len(chunk), -1))
        return np.concatenate(out)

    def time_calls(self, images: np.ndarray, warmup: int, runs: int, budget_s: float | None,
                   min_runs: int = 5) -> list[float]:
        """Seconds of each timed ``session.run`` on ``images``, measured in the page (performance.now)."""
        images = self._images(images)
        budget_ms = (budget_s or 3600.0) * 1000.0
        ms = self._page.evaluate(
            "([data, n, warmup, runs, budget, minRuns]) => window.edgeDemo.timeRuns(data, n, warmup, runs, budget, minRuns)",
            [base64.b64encode(images.tobytes()).decode("ascii"), len(images), int(warmup), int(runs), budget_ms,
             int(min_runs)])
        return [float(v) / 1000.0 for v in ms]

    def bench_call(self, images: np.ndarray) -> Callable[[], object]:
        """One in-page inference per call (includes the Python-browser round trip; prefer ``time_calls``)."""
        images = self._images(images)
        data = base64.b64encode(images.tobytes()).decode("ascii")
        evaluate = self._page.evaluate
        return lambda: evaluate("([data, n]) => window.edgeDemo.timeRuns(data, n, 0, 1, 1e9, 1)", [data, len(images)])

    def close(self) -> None:
        self._finalizer()


def _shutdown(handles: dict) -> None:
    browser, driver, server = handles.get("browser"), handles.get("driver"), handles.get("server")
    try:
        if browser is not None:
            close_browser(driver, browser)
    except Exception:  # noqa: BLE001  (the browser may already be gone at interpreter exit)
        pass
    if server is not None:
        server.stop()


def load(path: str | Path, threads: int | None = None) -> WebPredictor:
    """A Predictor running the edge ONNX model ``path`` in headless Chromium."""
    return WebPredictor(Path(path), threads)

