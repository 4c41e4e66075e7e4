"""Presenting a bench: rich table, ``bench.json``, a README-ready Markdown table, a PNG chart.

The chart plots accuracy against p50 latency, one marker per artifact and thread count, marker
area proportional to file size. Models without a latency (Core ML off macOS) are listed in the
table with "n/a on this OS" and left out of the chart.
"""

from __future__ import annotations

import json
import os
import platform
import re
from importlib import metadata as pkg_metadata
from pathlib import Path

from edge import formats as registry
from edge.errors import EdgeError
from edge.fileio import atomic_path, atomic_write_text
from edge.formats import Format

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
    return "-" if value is None else f"{value:.2f}"


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


COLUMNS = ("model", "runtime", "threads", "top-1", "top-5", "agree", "drop pts", "p50 ms", "p90 ms", "p99 ms",
           "mean ms", "std ms", "min ms", "img/s", "x floor", "size", "load s", "peak MB")
# What the terminal table keeps when it is narrow (the Markdown and JSON always have everything).
NARROW = ("model", "runtime", "threads", "top-1", "agree", "drop pts", "p50 ms", "p90 ms", "p99 ms", "size")


def row_cells(row) -> dict[str, str]:
    return dict(zip(COLUMNS, [
        row.name, short_runtime(row.runtime), "-" if row.threads is None else str(row.threads), _pct(row.accuracy),
        _pct(row.top5), _pct(row.agreement), _drop(row),
        _latency(row, "p50_ms"), _latency(row, "p90_ms"), _latency(row, "p99_ms"), _latency(row, "mean_ms"),
        _latency(row, "std_ms"), _latency(row, "min_ms"),
        "-" if row.throughput_ips is None else f"{row.throughput_ips:.0f}",
        "-" if row.x_floor is None else f"{row.x_floor:.2f}x",
        _size(row.size_bytes), "-" if row.load_s is None else f"{row.load_s:.2f}",
        "-" if row.peak_mem_mb is None else f"{row.peak_mem_mb:.0f}",
    ]))


def table(result, width: int = 200):
    from rich.table import Table

    columns = COLUMNS if width >= 170 else NARROW
    if not any(r.x_floor is not None for r in result.rows):
        columns = tuple(c for c in columns if c != "x floor")
    out = Table(title=f"edge bench: {result.count} images from {result.data}", title_justify="left")
    for name in columns:
        out.add_column(name, justify="left" if name in ("model", "runtime") else "right",
                       no_wrap=name in ("model", "p50 ms"))
    for row in result.rows:
        cells = row_cells(row)
        out.add_row(*(cells[c] for c in columns), style="red" if row.passed is False else None)
    return out


def print_summary(result, console) -> None:
    console.print(table(result, console.width))
    if result.reference:
        console.print(f"[dim]reference: {result.reference} ({result.reference_runtime}); batch {result.options['batch']}; "
                      "top-5 shown only for more than 5 classes; peak MB = growth of peak resident memory while "
                      "loading and running the model.[/]")
    for text in result.warnings:
        console.print(f"[yellow]warning:[/] {text}", highlight=False)
    failed = [row for row in result.rows if row.passed is False]
    if failed:
        console.print(f"[bold red]FAIL[/]: {', '.join(sorted({r.name for r in failed}))} dropped more than "
                      f"{result.max_drop:g} points of accuracy.")


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
    notes += [f"Warning: {w}" for w in result.warnings]
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def chart_png(result, path: Path) -> Path | None:
    """Accuracy vs p50 latency; marker area ~ file size. None when no row has both numbers."""
    points = [r for r in result.rows if r.p50_ms is not None and r.accuracy is not None]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 6))
    biggest = max(r.size_bytes for r in points) or 1
    palette = ("tab:blue", "tab:orange", "tab:purple", "tab:green", "tab:red", "tab:brown")
    colors = {fmt.name: palette[i % len(palette)] for i, fmt in enumerate(registry.all_formats())}
    markers = "os^Dv"
    threads = sorted({r.threads or 0 for r in points})
    legend = []
    for number, row in enumerate(points, 1):
        area = 60 + 1400 * row.size_bytes / biggest
        ax.scatter(row.p50_ms, row.accuracy * 100, s=area, alpha=0.5, color=colors.get(row.format, "tab:gray"),
                   marker=markers[threads.index(row.threads or 0) % len(markers)], edgecolors="black", linewidths=0.6)
        ax.annotate(str(number), (row.p50_ms, row.accuracy * 100), fontsize=8, ha="center", va="center")
        legend.append(f"{number:>2} {row.name} {row.threads or '-'}thr {row.p50_ms:.2f}ms {row.accuracy * 100:.1f}%")
    fig.text(0.66, 0.92, "\n".join(legend), fontsize=7, va="top", family="monospace")
    fig.subplots_adjust(left=0.06, right=0.64, top=0.92, bottom=0.1)
    if max(r.p50_ms for r in points) / max(min(r.p50_ms for r in points), 1e-9) > 20:
        ax.set_xscale("log")
    ax.set_xlabel("p50 latency per batch (ms, lower is better; marker shape = thread count)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"edge bench: accuracy vs latency ({result.count} images; marker area = file size)", fontsize=10)
    ax.grid(True, alpha=0.3, which="both")
    if ax.get_xscale() == "linear":
        ax.set_xlim(left=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def write_json(result, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(result.to_dict(), indent=2, default=_plain) + "\n")
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
