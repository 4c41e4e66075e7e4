"""Presenting a bench: rich table, ``bench.json``, a README-ready Markdown table, a PNG chart.

The chart plots accuracy against p50 latency, one marker per artifact and thread count, one colour
per format, marker area proportional to file size, the Pareto front labelled. Models without a
latency here (Core ML off macOS) are listed in the table as "n/a" and noted under the chart.
The ``resize agr`` column is each model's worst top-1 agreement with itself when the images are
resized the way other apps do (``edge.data.resize``) or, for TFLite, when MediaPipe Tasks' own
ImageClassifier is given the photo files (``edge.runtimes.mediapipe``); a second table has one column
per resize, and ``mediapipe``.
"""

from __future__ import annotations

import json
import os
import platform
import re
from importlib import metadata as pkg_metadata
from pathlib import Path
from typing import NamedTuple

from edge import formats as registry
from edge.data.resize import REFERENCE, RESIZERS
from edge.errors import EdgeError
from edge.fileio import atomic_path, atomic_write_text
from edge.formats import Format
from edge.runtimes.mediapipe import KEY as MEDIAPIPE
from edge.tables import Field, abbreviate, fit, short_name, wrapped

JSON_FILE = "bench.json"
MARKDOWN_FILE = "bench.md"
CHART_FILE = "bench.png"
PACKAGES = ("tensorflow", "tf-keras", "ai-edge-litert", "onnxruntime", "onnx", "tf2onnx", "coremltools", "numpy")


def _format(name: str) -> Format:
    try:
        return registry.get(name)
    except EdgeError:  # a row from a format this installation lacks: no format-specific notes
        return Format(name, name, "", (), (), None, lambda *a, **k: None, lambda p: {}, {}, "")


def _pct(value) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _ms(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"  # sub-millisecond latencies keep 3 digits


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def _latency(row, key: str) -> str:
    value = getattr(row, key)
    if value is not None:
        return _ms(value)
    return (row.latency_note or "-") if key == "p50_ms" else "-"


def _drop(row) -> str:
    if row.drop_pts is None:
        return "-"
    mark = "" if row.passed is None else (" ok" if row.passed else " FAIL")
    return f"{row.drop_pts:+.2f}{mark}"


def short_runtime(runtime: str) -> str:
    """The runtime without its thread count (the table has a threads column)."""
    text = re.sub(r",?\s*(\d+|default) threads?", "", runtime)
    return re.sub(r"\s*\(\s*\)", "", text).strip()


RESIZE_COLUMN = "resize agr"  # the worst of a model's resize_agreement
COLUMNS = ("model", "runtime", "threads", "top-1", "top-5", "agree", "drop pts", RESIZE_COLUMN, "p50 ms", "p90 ms",
           "p99 ms", "mean ms", "std ms", "min ms", "img/s", "x floor", "size", "load s", "peak MB")
# The terminal table: every column when the terminal is wide enough, else the ones not optional
# (the Markdown and JSON always have everything), else one block per model (edge.tables.fit).
FIELDS = tuple(
    Field(name, "left" if name in ("model", "runtime") else "right",
          optional=name in ("p90 ms", "p99 ms", "mean ms", "std ms", "min ms", "img/s", "x floor", "load s", "peak MB"))
    for name in COLUMNS
)
NOT_AVAILABLE = "n/a"


def row_cells(row) -> dict[str, str]:
    return dict(zip(COLUMNS, [
        row.name, short_runtime(row.runtime), "-" if row.threads is None else str(row.threads), _pct(row.accuracy),
        _pct(row.top5), _pct(row.agreement), _drop(row), _pct(min(row.resize_agreement.values(), default=None)),
        _latency(row, "p50_ms"), _latency(row, "p90_ms"), _latency(row, "p99_ms"), _latency(row, "mean_ms"),
        _latency(row, "std_ms"), _latency(row, "min_ms"),
        "-" if row.throughput_ips is None else f"{row.throughput_ips:.0f}",
        "-" if row.x_floor is None else f"{row.x_floor:.2f}x",
        _size(row.size_bytes), "-" if row.load_s is None else f"{row.load_s:.2f}",
        "-" if row.peak_mem_mb is None else f"{row.peak_mem_mb:.0f}",
    ]))


def latency_note(row) -> str:
    """Why a row has no latency, as a sentence naming the format ("Core ML: latency n/a on Linux")."""
    note = row.latency_note
    if not note:
        return ""
    note = note.replace("this OS", platform.system() or "this OS")
    return f"{_format(row.format).display_name}: latency {note}"


def terminal_rows(result) -> tuple[list[dict[str, str]], list[tuple[str, list[str]]]]:
    """Cells for the terminal (short runtime names, "n/a" latencies) and the footnotes they need
    (a head and its items: "runtimes:", ["LiteRT = LiteRT 2.3.0 (XNNPACK)", ...])."""
    runtimes, notes = abbreviate([short_runtime(r.runtime) for r in result.rows])
    rows = []
    for row in result.rows:
        cells = row_cells(row)
        cells["runtime"] = runtimes.get(cells["runtime"], cells["runtime"])
        if row.p50_ms is None and row.latency_note:
            for name in ("p50 ms", "p90 ms", "p99 ms", "mean ms", "std ms", "min ms"):
                cells[name] = NOT_AVAILABLE
        rows.append(cells)
    footnotes = [("runtimes:", notes)] if notes else []
    unmeasured = list(dict.fromkeys(latency_note(r) for r in result.rows if r.p50_ms is None and r.latency_note))
    if unmeasured:
        footnotes.append(("", unmeasured))
    return rows, footnotes


def table(result, width: int = 200):
    """The bench as a table that fits ``width`` columns (see ``edge.tables.fit``)."""
    rows, _ = terminal_rows(result)
    fields = [f for f in FIELDS if f.name in ("model", "runtime") or any(r[f.name] != "-" for r in rows)]
    return fit(rows, fields, width, title=f"edge bench: {result.count} images from {result.data}",
               styles=["red" if r.passed is False else None for r in result.rows])


class ResizeEntry(NamedTuple):
    """One model in the per-resize tables."""

    name: str
    agreement: dict[str, float]  # per variant (and "mediapipe")
    accuracy: dict[str, float]
    own: float | None  # its accuracy with edge's own resize
    note: str = ""  # why it has no "mediapipe" entry although MediaPipe was asked ("refused (int8 input)")


def resize_entries(result) -> list[ResizeEntry]:
    """One entry per model measured under the resize variants. The reference first when it is not a benched
    row; one entry per model and runtime (a thread sweep repeats the same numbers)."""
    entries = []
    if result.reference_resize_agreement:
        own = next((r.reference_accuracy for r in result.rows if r.reference_accuracy is not None), None)
        entries.append(ResizeEntry(f"{Path(result.reference).name} (reference)", result.reference_resize_agreement,
                                   result.reference_resize_accuracy, own))
    measured: dict[tuple[str, str], object] = {}
    for row in result.rows:
        if row.resize_agreement:
            measured.setdefault((row.path, short_runtime(row.runtime)), row)
    names = [row.name for row in measured.values()]
    for (_, runtime), row in measured.items():
        name = row.name if names.count(row.name) == 1 else f"{row.name} ({short_name(runtime)})"
        entries.append(ResizeEntry(name, row.resize_agreement, row.resize_accuracy, row.accuracy, row.mediapipe_note))
    return entries


def resize_columns(entries: list[ResizeEntry]) -> tuple[str, ...]:
    """The resize filters some model was measured under (all but its own), and ``mediapipe`` when some
    model has it (or says why not)."""
    measured = {v for e in entries for v in e.agreement}
    has_mediapipe = any(MEDIAPIPE in e.agreement or e.note for e in entries)
    return (*(v for v in RESIZERS if v in measured), *((MEDIAPIPE,) if has_mediapipe else ()))


def own_resize(entries: list[ResizeEntry]) -> str:
    """What the agreement is measured against: the filter no model was measured under (every model's
    own: edge's resize unless they were trained with ``--resize``), or "own resize" when they differ."""
    unmeasured = [v for v in RESIZERS if all(v not in e.agreement for e in entries)]
    return unmeasured[0] if len(unmeasured) == 1 else "own resize"


def _resize_cell(entry: ResizeEntry, values: dict[str, float], column: str) -> str:
    return entry.note if column == MEDIAPIPE and entry.note else _pct(values.get(column))


def resize_table(result, width: int = 200):
    """Each model's top-1 agreement with itself under every other resize (and MediaPipe), as a table that
    fits ``width`` (None when no model was measured: ``resize_variants=False``)."""
    entries = resize_entries(result)
    if not entries:
        return None
    columns = resize_columns(entries)
    rows = [{"model": e.name, **{c: _resize_cell(e, e.agreement, c) for c in columns}} for e in entries]
    fields = [Field("model", "left"), *(Field(c) for c in columns)]
    return fit(rows, fields, width,
               title=f"same top-1 as with {own_resize(entries)}, per resize ({RESIZE_COLUMN} = the lowest)")


def mediapipe_legend(result) -> str:
    """What the ``mediapipe`` column is ("" when it is not in the tables); why it is missing is
    ``result.mediapipe["note"]``."""
    version = result.mediapipe.get("version")
    if not version or MEDIAPIPE not in resize_columns(resize_entries(result)):
        return ""
    return (f"{MEDIAPIPE}: MediaPipe Tasks {version} ImageClassifier given the photo files (its own decoding and "
            "resizing), against the model's top-1 through edge's.")


def print_summary(result, console) -> None:
    console.print(table(result, console.width))
    _, footnotes = terminal_rows(result)
    for head, items in footnotes:  # wrapped between items only: no runtime name split across lines
        console.print(wrapped(f"[dim]{head}[/]", [f"[dim]{item}[/]" for item in items], console.width, "; "))
    resized = resize_table(result, console.width)
    if resized is not None:
        console.print(resized)
    for line in (mediapipe_legend(result), result.mediapipe.get("note")):
        if line:
            console.print(line, highlight=False, markup=False)
    if result.reference:
        console.print(f"[dim]reference: {result.reference} ({result.reference_runtime}); batch {result.options['batch']}; "
                      "top-5 shown only for more than 5 classes; peak MB = growth of peak resident memory while "
                      "loading and running the model; every column is in bench.md and bench.json.[/]", highlight=False)
    for text in result.warnings:
        console.print(f"[yellow]warning:[/] {text}", highlight=False)
    failed = [row for row in result.rows if row.passed is False]
    if failed:
        console.print(f"[bold red]FAIL[/]: {', '.join(sorted({r.name for r in failed}))} dropped more than "
                      f"{result.max_drop:g} points of accuracy.", highlight=False)


def markdown(result) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for row in result.rows:
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in row_cells(row).values()) + " |")
    notes = [f"{result.count} images from {result.data}; batch {result.options['batch']}; "
             f"warm-up {result.options['warmup']}, then up to {result.options['runs']} timed runs or "
             f"{result.options['time_budget_s']:g} s."]
    if result.reference:
        notes.append(f"Agreement and drop against {Path(result.reference).name} ({result.reference_runtime}).")
    notes += [note for note in dict.fromkeys(_format(r.format).bench_note for r in result.rows) if note]
    notes.append("Only the runtime call is timed (decode, resize and input quantization happen before the loop); "
                 "peak MB is the growth of the process's peak resident memory while loading and running the model.")
    notes += [note for note in [result.mediapipe.get("note")] if note]
    notes += [f"Warning: {w}" for w in result.warnings]
    text = "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    return text + resize_markdown(result)


def resize_markdown(result) -> str:
    """The per-resize numbers behind ``resize agr``: agreement and accuracy tables ("" when not measured)."""
    entries = resize_entries(result)
    if not entries:
        return ""

    def md_table(columns, cells) -> list[str]:
        return ["| model | " + " | ".join(columns) + " |", "|---|" + "|".join("---" for _ in columns) + "|",
                *(f"| {name.replace('|', '/')} | " + " | ".join(row) + " |" for name, row in cells)]

    columns = resize_columns(entries)
    agreement = md_table(columns, [(e.name, [_resize_cell(e, e.agreement, c) for c in columns]) for e in entries])
    own = own_resize(entries)
    accuracy = md_table((own, *columns),
                        [(e.name, [_pct(e.own), *(_resize_cell(e, e.accuracy, c) for c in columns)]) for e in entries])
    legend = mediapipe_legend(result)
    return "\n".join([
        "", f"Top-1 agreement of each model with itself when the images are resized the way other apps do instead "
        f"of {'edge' if own == REFERENCE else 'each model'}'s {own} ({RESIZE_COLUMN} = the lowest):", "",
        *agreement, "", *([legend, ""] if legend else []), "Top-1 accuracy with each resize:", "", *accuracy, ""])


PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#d62728", "#8c564b", "#e377c2", "#17becf")
THREAD_MARKERS = "osD^v"


def pareto_front(points) -> list:
    """The rows no other row beats on both axes (lower p50 latency and higher accuracy)."""
    front = []
    for row in points:
        dominated = any(
            other is not row and other.p50_ms <= row.p50_ms and other.accuracy >= row.accuracy
            and (other.p50_ms < row.p50_ms or other.accuracy > row.accuracy)
            for other in points
        )
        if not dominated:
            front.append(row)
    return sorted(front, key=lambda r: r.p50_ms)


def _size_label(n: float) -> str:
    return f"{n / 1e6:.3g} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def chart_png(result, path: Path) -> Path | None:
    """``bench.png`` (see ``chart``); None when no row has both an accuracy and a latency."""
    fig = chart(result)
    if fig is None:
        return None
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png", bbox_inches="tight", pad_inches=0.15,
                    bbox_extra_artists=_outside_artists(fig))
    plt.close(fig)
    return path


def _outside_artists(fig) -> list:
    """The legends and notes around the axes, so the tight bounding box keeps them whole."""
    ax = fig.axes[0]
    return [a for a in ax.get_children() if type(a).__name__ == "Legend"] + list(ax.texts)


def chart(result):
    """Top-1 accuracy vs p50 latency as a matplotlib figure: one colour per format (legend), marker
    area = file size (size key), marker shape = thread count, the Pareto front labelled, a dashed
    line at the reference's accuracy, and the formats without a latency here noted under the axes."""
    points = [r for r in result.rows if r.p50_ms is not None and r.accuracy is not None]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(9, 5.2))
    formats_here = list(dict.fromkeys(r.format for r in result.rows))
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(formats_here)}
    threads = sorted({r.threads or 0 for r in points})
    biggest = max(max(r.size_bytes for r in points), 1)

    def area(size: float) -> float:  # marker area in points^2, proportional to the file size
        return 30 + 570 * size / biggest

    for row in points:
        ax.scatter(row.p50_ms, row.accuracy * 100, s=area(row.size_bytes), color=colors[row.format], alpha=0.7,
                   marker=THREAD_MARKERS[threads.index(row.threads or 0) % len(THREAD_MARKERS)],
                   edgecolors="black", linewidths=0.6, clip_on=False, zorder=3)

    # Axes: padded around the data (never below 0% or above 100%); log latency when it spans > 5x.
    ys = [r.accuracy * 100 for r in points]
    references = sorted({r.reference_accuracy for r in result.rows if r.reference_accuracy is not None})
    lo, hi = min(ys + [v * 100 for v in references]), max(ys + [v * 100 for v in references])
    pad = max(hi - lo, 2.0) * 0.18
    bottom, top = max(0.0, lo - pad), hi + pad  # room above a 100% point for its marker, but no tick past 100%
    ax.set_ylim(bottom, top)
    ax.set_yticks([t for t in ax.get_yticks() if bottom <= t <= 100.0])
    ax.set_ylim(bottom, top)
    xs = [r.p50_ms for r in points]
    if max(xs) / max(min(xs), 1e-9) > 5:
        from matplotlib.ticker import FuncFormatter, LogLocator

        ax.set_xscale("log")
        ax.set_xlim(min(xs) / 1.4, max(xs) * 1.4)
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    else:
        spread = max(max(xs) - min(xs), max(xs) * 0.2, 1e-3)
        ax.set_xlim(max(0.0, min(xs) - 0.15 * spread), max(xs) + 0.15 * spread)
    for value in references[:1]:  # named in the legend (a label here would sit on the points)
        ax.axhline(value * 100, color="gray", linestyle="--", linewidth=0.8, zorder=1)

    # Labels on the points that matter: the Pareto front (fastest for its accuracy).
    several = len(threads) > 1
    for i, row in enumerate(pareto_front(points)):
        text = row.name + (f" ({row.threads} thr)" if several and row.threads else "")
        text += f"\n{_ms(row.p50_ms)} ms, {row.accuracy * 100:.1f}%"
        near_top = row.accuracy * 100 > top - (top - bottom) * 0.2  # a label above would run into the title
        ax.annotate(text, (row.p50_ms, row.accuracy * 100), xytext=(12, -26 if near_top or i % 2 else 10),
                    textcoords="offset points", fontsize=7, zorder=4,
                    bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none", alpha=0.8),
                    arrowprops=dict(arrowstyle="-", color="gray", linewidth=0.6))

    # Legends: format colours, the file-size key, thread counts (when several).
    format_handles = [Line2D([], [], marker="o", linestyle="", markersize=8, color=colors[name],
                             markeredgecolor="black", label=_format(name).display_name) for name in formats_here
                      if any(r.format == name for r in points)]
    if references:
        format_handles.append(Line2D([], [], color="gray", linestyle="--", linewidth=0.8,
                                     label=f"reference {references[0] * 100:.1f}%"))
    first = ax.legend(handles=format_handles, title="format", loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      fontsize=8, title_fontsize=8, frameon=False)
    ax.add_artist(first)
    smallest = max(min(r.size_bytes for r in points), 1)
    sizes = sorted({smallest, biggest} | ({(smallest * biggest) ** 0.5} if biggest > 4 * smallest else set()))
    size_handles = [ax.scatter([], [], s=area(v), color="lightgray", edgecolors="black", linewidths=0.6,
                               label=_size_label(v)) for v in sizes]
    second = ax.legend(handles=size_handles, title="file size", loc="upper left", bbox_to_anchor=(1.01, 0.55),
                       fontsize=8, title_fontsize=8, frameon=False, labelspacing=1.3, borderpad=0.8)
    if several:
        ax.add_artist(second)
        thread_handles = [Line2D([], [], marker=THREAD_MARKERS[i % len(THREAD_MARKERS)], linestyle="",
                                 color="gray", label=f"{t} thread{'s' if t != 1 else ''}" if t else "default")
                          for i, t in enumerate(threads)]
        ax.legend(handles=thread_handles, title="threads", loc="lower left", bbox_to_anchor=(1.01, 0.0),
                  fontsize=8, title_fontsize=8, frameon=False)

    batch = result.options.get("batch", 1)
    ax.set_xlabel(f"p50 latency per batch of {batch} (ms; lower is better)", fontsize=9)
    ax.set_ylabel("top-1 accuracy (%)", fontsize=9)
    ax.set_title(f"edge bench: accuracy vs latency on {result.count} images", fontsize=10)
    ax.grid(True, alpha=0.3, which="both")
    ax.tick_params(labelsize=8)
    missing = [f"{r.name}: {latency_note(r)}" + (f" (top-1 {r.accuracy * 100:.1f}%)" if r.accuracy is not None else "")
               for r in result.rows if r.p50_ms is None and r.latency_note]
    if missing:
        ax.text(0.0, -0.13, "\n".join(dict.fromkeys(missing)), transform=ax.transAxes, fontsize=7.5, va="top",
                color="dimgray")
    return fig


def to_json(result) -> str:
    """What ``bench.json`` holds (also what ``edge bench --json -`` prints)."""
    return json.dumps(result.to_dict(), indent=2, default=_plain) + "\n"


def write_json(result, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, to_json(result))
    return path


def write_all(result, out_dir: Path, json_file: Path | None = None) -> dict[str, Path]:
    """``bench.json``, ``bench.md`` and ``bench.png`` in ``out_dir`` (and ``json_file`` when given)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {"json": write_json(result, out_dir / JSON_FILE)}
    md = out_dir / MARKDOWN_FILE
    atomic_write_text(md, markdown(result))
    written["markdown"] = md
    png = chart_png(result, out_dir / CHART_FILE)
    if png:
        written["chart"] = png
    if json_file is not None:
        written["json_file"] = write_json(result, json_file)
    return written


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else platform.machine()


def cpu_flags() -> list[str]:
    """The vector extensions that decide fp32/int8 kernel speed (AVX2, AVX-512, VNNI, AMX)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    match = re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE)
    flags = set(match.group(1).split()) if match else set()
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
    return [f for f in wanted if f in flags]


def machine_info() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = pkg_metadata.version(name)
        except pkg_metadata.PackageNotFoundError:
            pass
    return {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": versions,
    }
