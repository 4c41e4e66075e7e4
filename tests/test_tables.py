"""Every table edge prints is whole at 80, 120 and 200 columns, and bench.png reads well.

Tables are rendered with rich's recording console at each width; every artifact name and every
number must appear uncut (no ellipsis, no line wider than the terminal). No model runs here.
"""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from edge import tables
from edge.bench import report
from edge.bench.runner import BenchResult, Row
from edge.export.report import Entry, ExportReport
from edge.tables import Field

WIDTHS = (80, 120, 200)
NAME = "flowers_mobilenet_v2_100_224"

ARTIFACTS = [  # name, format, quantize, runtime, accuracy, p50 ms (None: no latency here), size
    (f"{NAME}_fp32.tflite", "tflite", "fp32", "LiteRT 2.3.0 (XNNPACK, {t} threads)", 0.905, 12.31, 9_100_000),
    (f"{NAME}_fp16.tflite", "tflite", "fp16", "LiteRT 2.3.0 (XNNPACK, {t} threads)", 0.905, 12.9, 4_600_000),
    (f"{NAME}_int8.tflite", "tflite", "int8", "LiteRT 2.3.0 (XNNPACK, {t} threads)", 0.894, 4.02, 2_700_000),
    (f"{NAME}_fp32.onnx", "onnx", "fp32", "onnxruntime 1.31.1 (CPU, {t} threads)", 0.905, 9.87, 9_000_000),
    (f"{NAME}_int8.onnx", "onnx", "int8", "onnxruntime 1.31.1 (CPU, {t} threads)", 0.871, 0.655, 2_600_000),
    ("model.keras", "keras", "fp32", "TensorFlow 2.21.0 (tf_keras)", 0.905, 31.2, 27_000_000),
    (f"{NAME}_fp16.mlpackage", "coreml", "fp16", "MIL executor (compiled to TensorFlow, fp16 emulated)", 1.0, None,
     4_700_000),
]


def fake_bench(threads=(1,), classes: int = 102) -> BenchResult:
    rows = []
    for t in threads:
        for name, fmt, kind, runtime, accuracy, p50, size in ARTIFACTS:
            drop = round((0.905 - accuracy) * 100, 2)
            row = Row(name=name, path=f"/runs/flowers/export/{name}", format=fmt, quantize=kind,
                      runtime=runtime.format(t=t), threads=t, batch=1, count=100, accuracy=accuracy,
                      top5=0.99 if classes > 5 else None, agreement=0.97, drop_pts=drop, max_prob_diff=0.01,
                      reference_accuracy=0.905, passed=drop <= 1.0, size_bytes=size, load_s=0.12, peak_mem_mb=45.0)
            if p50 is None:
                row.latency_note = "n/a on this OS"
            else:
                p50 = p50 / t
                row.p50_ms, row.p90_ms, row.p99_ms, row.mean_ms = p50, p50 * 1.1, p50 * 1.3, p50 * 1.02
                row.std_ms, row.min_ms, row.throughput_ips, row.runs = 0.31, p50 * 0.9, 1000 / p50, 100
            rows.append(row)
    return BenchResult(rows=rows, data="runs/flowers (test split)", count=100, reference="runs/flowers/model.keras",
                       reference_runtime="TensorFlow 2.21.0 (tf_keras)", max_drop=1.0, warnings=[], machine={},
                       options={"batch": 1, "warmup": 5, "runs": 100, "time_budget_s": 10})


def render(renderable_or_fn, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), force_terminal=False, color_system=None)
    if callable(renderable_or_fn):
        renderable_or_fn(console)
    else:
        console.print(renderable_or_fn)
    return console.export_text()


def assert_whole(text: str, width: int, needles) -> None:
    assert "…" not in text and "..." not in text.replace("... and", ""), text
    for line in text.splitlines():
        assert len(line.rstrip()) <= width, f"line wider than {width}: {line!r}"
    for needle in needles:
        assert needle in text, f"{needle!r} missing or cut at {width} columns:\n{text}"


# ---------------------------------------------------------------------------------------------- bench

@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("threads", [(1,), (1, 4)])
def test_bench_table_whole_at_every_width(width, threads):
    result = fake_bench(threads)
    text = render(lambda c: report.print_summary(result, c), width)
    needles = []
    for row in result.rows:
        cells = report.row_cells(row)
        needles += [row.name, cells["top-1"], cells["top-5"], cells["agree"], cells["drop pts"], cells["size"]]
        if row.p50_ms is not None:
            needles += [cells["p50 ms"]]
    assert_whole(text, width, needles)
    assert "LiteRT" in text and "onnxruntime 1.31.1 (CPU)" in text  # short names, the long form in a footnote
    assert "Core ML: latency n/a on" in text


def test_bench_table_uses_the_width():
    result = fake_bench()
    wide, narrow = render(report.table(result, 200), 200), render(report.table(result, 80), 80)
    assert "┃ model" in wide and "p99 ms" in wide  # one row per model, every column
    assert "┃" not in narrow and "runtime LiteRT" in narrow  # one block per model
    middle = render(report.table(result, 130), 130)
    assert "┃ model" in middle and "p99 ms" not in middle  # the essential columns (bench.md has the rest)


def test_bench_markdown_keeps_every_column():
    md = report.markdown(fake_bench())
    assert md.startswith("| " + " | ".join(report.COLUMNS) + " |")


# ---------------------------------------------------------------------------------------------- export

def fake_export_report() -> ExportReport:
    entries = []
    for name, fmt, kind, _, accuracy, _, size in ARTIFACTS[:5] + ARTIFACTS[6:]:
        entries.append(Entry(format=fmt, quantize=kind, path=f"runs/flowers/export/{name}", status="passed",
                             size_bytes=size, export_seconds=12.5, verify_seconds=3.25, agreement=0.995,
                             accuracy=accuracy, drop_pts=0.11, max_prob_diff=2.5e-4, verified_by="LiteRT 2.3.0"))
    entries.append(Entry(format="onnx", quantize="dynamic", status="error", reason="converter failed"))
    entries.append(Entry(format="coreml", quantize="int8", status="not verified", size_bytes=2_400_000,
                         path=f"runs/flowers/export/{NAME}_int8.mlpackage"))
    return ExportReport(source="runs/flowers", out_dir="runs/flowers/export", model_name=NAME,
                        held_out="runs/flowers held-out split", held_out_count=367, reference_accuracy=0.905,
                        reference_runtime="TensorFlow", entries=entries)


@pytest.mark.parametrize("width", WIDTHS)
def test_export_table_whole_at_every_width(width):
    from edge.cli.export_cmd import _num, _pct, _size, report_table

    rep = fake_export_report()
    text = render(report_table(rep, width), width)
    needles = []
    for e in rep.entries:
        needles.append(e.path.rsplit("/", 1)[-1] if e.ok and e.path else f"{e.format} {e.quantize}")
        needles += [e.status, _size(e.size_bytes), _pct(e.accuracy), _num(e.drop_pts, "+.2f"), _pct(e.agreement)]
    assert_whole(text, width, needles)


@pytest.mark.parametrize("width", (60, 80))
def test_export_progress_line_never_splits_a_fact(width):
    from edge.cli.export_cmd import entry_line

    entry = Entry(format="coreml", quantize="fp16", path=f"runs/flowers/export/{NAME}_fp16.mlpackage",
                  status="passed", size_bytes=4_700_000, agreement=0.991, drop_pts=0.5, export_seconds=12.5,
                  verify_seconds=3.5, changed=4, changed_unsure=3)
    text = render(entry_line(entry, width), width)
    for fact in (f"{NAME}_fp16.mlpackage", "4.70 MB", "agree 99.1%", "drop +0.50", "convert 12.5 s", "verify 3.5 s",
                 "4 answers changed (3 where Keras was unsure)"):
        assert fact in text  # on one line, never split
    for line in text.splitlines():
        assert len(line.rstrip()) <= width


# ---------------------------------------------------------------------------------------------- predict

@pytest.mark.parametrize("width", WIDTHS)
def test_predict_table_whole_at_every_width(width):
    from edge.cli.predict_cmd import predictions_table
    from edge.predict import ImagePrediction, Prediction, PredictResult

    labels = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    result = PredictResult(model="m.tflite", format="TFLite", runtime="LiteRT", labels=labels, input_size=(224, 224),
                           top_k=5)
    for i in range(4):
        scores = sorted([0.61, 0.2, 0.1, 0.06, 0.03], reverse=True)
        result.images.append(ImagePrediction(f"/photos/holiday_2024/IMG_{4000 + i}_with_a_long_name.HEIC",
                                             [Prediction(labels[(i + j) % 5], s) for j, s in enumerate(scores)]))
    text = render(predictions_table(result, width), width)
    needles = [f"IMG_{4000 + i}_with_a_long_name.HEIC" for i in range(4)] + ["61.0%", "20.0%", "3.0%", "sunflowers"]
    assert_whole(text, width, needles)


# ---------------------------------------------------------------------------------------------- the layout

def test_fit_switches_layout_and_never_cuts():
    fields = [Field("name", "left"), Field("a"), Field("b", optional=True)]
    rows = [{"name": "x" * 30, "a": "1.2345", "b": "9" * 20}]
    assert "┃ name" in render(tables.fit(rows, fields, 200), 200)
    narrow = render(tables.fit(rows, fields, 50), 50)
    assert "┃ name" in narrow and "9" * 20 not in narrow  # the optional column left out
    vertical = render(tables.fit(rows, fields, 30), 30)
    assert "x" * 30 in vertical and "a 1.2345" in vertical


def test_pack_keeps_pairs_together():
    from rich.text import Text

    lines = tables.pack([Text(f"key{i} {i * 1111}") for i in range(10)], 30)
    assert all(line.cell_len <= 30 for line in lines)
    joined = " ".join(line.plain for line in lines)
    assert all(f"key{i} {i * 1111}" in joined for i in range(10))


def test_abbreviate_runtime_names():
    mapping, notes = tables.abbreviate(["LiteRT 2.3.0 (XNNPACK)", "onnxruntime 1.31.1 (CPU)", "Core ML (macOS)",
                                        "MIL executor (compiled to TensorFlow, fp16 emulated)", "plain"])
    assert mapping["LiteRT 2.3.0 (XNNPACK)"] == "LiteRT" and mapping["Core ML (macOS)"] == "Core ML"
    assert mapping["MIL executor (compiled to TensorFlow, fp16 emulated)"] == "MIL executor"
    assert mapping["plain"] == "plain" and len(notes) == 4
    clash, _ = tables.abbreviate(["LiteRT 2.3.0", "LiteRT 2.4.0"])
    assert clash == {"LiteRT 2.3.0": "LiteRT¹", "LiteRT 2.4.0": "LiteRT²"}


# ---------------------------------------------------------------------------------------------- training bar

@pytest.mark.parametrize("width", (80, 120))
def test_progress_bar_without_a_tty_stays_readable(width, monkeypatch):
    from edge import console as consoles

    out = io.StringIO()
    monkeypatch.setattr(consoles, "console", Console(file=out, width=width, force_terminal=False))
    bar = consoles.progress()
    with bar:
        task = bar.add_task("scratch", total=12, info="")
        bar.update(task, completed=12, info="loss 1.542  accuracy 0.389  val_loss 1.160  val_accuracy 0.556")
    text = out.getvalue()
    assert "…" not in text and "12/12" in text and "scratch" in text
    assert all(v in " ".join(text.split()) for v in ("1.542", "0.389", "1.160", "0.556"))


# ---------------------------------------------------------------------------------------------- bench.png

def test_bench_chart(tmp_path):
    result = fake_bench((1, 4))
    fig = report.chart(result)
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert high <= 100.0 and low >= 0.0 and high - low < 30  # never past 100%, no huge empty band
    texts = [t.get_text() for t in ax.texts]
    assert any("Core ML: latency n/a on" in t for t in texts)  # from the format record's latency_note
    labelled = [t for t in texts if t.endswith("%") and " ms, " in t]
    front = report.pareto_front([r for r in result.rows if r.p50_ms is not None])
    assert len(labelled) == len(front) >= 2
    legends = [[t.get_text() for t in legend.get_texts()] for legend in ax.get_children()
               if type(legend).__name__ == "Legend"]
    flat = [t for legend in legends for t in legend]
    assert {"TFLite", "ONNX", "Keras"} <= set(flat)  # one colour per format
    assert any(re.fullmatch(r"[\d.]+ (MB|kB)", t) for t in flat)  # the size key
    assert {"1 thread", "4 threads"} <= set(flat)
    png = report.chart_png(result, tmp_path / "bench.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_pareto_front():
    result = fake_bench()
    front = report.pareto_front([r for r in result.rows if r.p50_ms is not None])
    names = [r.name for r in front]
    assert names == [f"{NAME}_int8.onnx", f"{NAME}_int8.tflite", f"{NAME}_fp32.onnx"]


@pytest.mark.parametrize("changed, unsure, text", [
    (0, 0, ""), (1, 0, "1 answer changed (Keras was sure)"), (1, 1, "1 answer changed (Keras was unsure)"),
    (3, 0, "3 answers changed (Keras was sure of each)"), (2, 2, "2 answers changed (all where Keras was unsure)"),
    (5, 3, "5 answers changed (3 where Keras was unsure)"),
])
def test_export_line_says_which_answers_changed(changed, unsure, text):
    from edge.cli.export_cmd import changed_answers

    assert changed_answers(Entry(format="tflite", quantize="int8", changed=changed, changed_unsure=unsure)) == text
