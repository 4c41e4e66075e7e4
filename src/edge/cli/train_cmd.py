"""``edge train``: options -> ``edge.train.train``.

Defaults, flag names and choices come from ``TrainConfig`` (never restated here), and the config
validates every value, so the CLI and the API refuse the same values with the same sentence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edge.backbones import BACKBONES
from edge.cli.app import app, epilog, examples, json_option, quiet_option, setup_output, verbose_option, write_json
from edge.data.resize import MODE_NOTES
from edge.train.config import CLASS_WEIGHTS, DEVICES, MIXED_PRECISION, SCHEDULES, TrainConfig, flag, format_split

DEFAULTS = TrainConfig()

EPILOG = epilog(
    "The run directory (default runs/<data folder name>) holds model.keras, spec.json, labels.txt, the split, "
    "metrics.json and plots; edge export and edge bench read everything from it. Ctrl-C keeps the last completed "
    "epoch: the same command (or --resume) continues.",
    examples(
        "edge train flowers/                                    # ImageNet MobileNetV2 at 224 px",
        "edge train shapes/ --weights none --alpha 0.35 --image-size 64 --epochs 15",
        "edge train flowers/ --weights ~/mobilenet_v2_no_top.h5    # offline: a local weights file",
        "edge train photos/ --csv labels.csv --split 70/15/15",
        "edge train flowers/ -q --json - | jq .metrics.test.accuracy",
    ),
)


def _option(name: str, help: str, default=None, **kwargs):
    """A typer option for the TrainConfig field ``name``: its one flag (``flag``: --lr for
    learning_rate; a second, longer alias would not fit the help's option column at 80 columns) and
    its default unless given."""
    value = getattr(DEFAULTS, name) if default is None else default
    return typer.Option(value, flag(name), help=help, **kwargs)


@app.command(no_args_is_help=True, epilog=EPILOG)
def train(
    data: Path = typer.Argument(..., help="Folder of class sub-folders, a folder split into train/, val/ and optional test/, or a CSV file."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Where the run goes (default: runs/<data folder name>, a new name if taken)."),
    backbone: str = _option("backbone", f"One of: {', '.join(BACKBONES)}."),
    weights: str = _option("weights", "imagenet (Keras download/cache), none (train from scratch), or PATH to a weights file."),
    image_size: Optional[int] = _option("image_size", "Square input size in pixels (default: the backbone's own, e.g. 224)."),
    alpha: Optional[float] = _option("alpha", "Width multiplier for MobileNet backbones (e.g. 0.35, 0.5, 1.0)."),
    epochs: int = _option("epochs", "Stage 1 epochs: the head on cached bottleneck features (whole network with --weights none)."),
    fine_tune_epochs: int = _option("fine_tune_epochs", "Stage 2 epochs: fine-tune the top backbone layers (0 skips it)."),
    fine_tune_from: Optional[str] = _option("fine_tune_from", "First backbone layer to unfreeze (default: the backbone's own choice)."),
    fine_tune_schedule: str = _option("fine_tune_schedule", f"{', '.join(SCHEDULES)}: cosine warms up for an epoch, decays to 0 and keeps the last epoch; constant stops early (--patience)."),
    fine_tune_views: int = _option("fine_tune_views", "Views of each training photo (the photo, then augmented ones) run once through the frozen layers and cached; fine-tuning trains the top on them (0: whole network every epoch, slower)."),
    batch_size: int = _option("batch_size", "Global batch size."),
    learning_rate: float = _option("learning_rate", "Learning rate of stage 1."),
    fine_tune_learning_rate: float = _option("fine_tune_learning_rate", "Learning rate of stage 2."),
    int8_exact: bool = typer.Option(DEFAULTS.int8_exact, "--int8-exact/--no-int8-exact", help="Fine-tune on int8-rounded kernels and keep them: the int8 file gets the float model's own weights, so fewer answers change."),
    dropout: float = _option("dropout", "Dropout before the softmax head."),
    label_smoothing: float = _option("label_smoothing", "Label smoothing of the cross-entropy loss."),
    class_weights: str = _option("class_weights", f"{', '.join(CLASS_WEIGHTS)} (auto: balanced when classes are imbalanced >1.5x)."),
    patience: int = _option("patience", "Early stopping patience in epochs on val accuracy (0 = off); best weights restored. Not in a cosine fine-tune."),
    augment: bool = typer.Option(DEFAULTS.augment, "--augment/--no-augment", help="Flip, rotate, zoom, contrast and brightness changes on training images."),
    resize_augment: bool = typer.Option(DEFAULTS.resize_augment, "--resize-augment", help="Resize each augmented view's photos with a filter apps use (bicubic, area, bilinear without antialias, nearest, edge's own). Off by default: no measured gain on flowers-mini."),
    resize: str = _option("resize", "How the model resizes photos: " + " or ".join(f"{mode} ({note})" for mode, note in MODE_NOTES.items()) + ". Training, the export gate, bench and predict all resize this way."),
    split: str = _option("split", "Train/val/test percentages for a folder or CSV dataset.", default=format_split(DEFAULTS.split)),
    csv: Optional[Path] = _option("csv", "CSV of filename,label (filenames relative to DATA)."),
    csv_allow_outside: bool = _option("csv_allow_outside", "Accept CSV rows whose files lie outside the data folder (../, absolute paths)."),
    seed: int = _option("seed", "Seed for the split, initialisation and augmentation."),
    mixed_precision: str = _option("mixed_precision", f"{', '.join(MIXED_PRECISION)} (auto: on for GPUs with float16 units)."),
    devices: str = _option("devices", f"{', '.join(DEVICES)}, or cpu:N (mirror over N logical CPUs)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --run-dir (running the same command again does too)."),
    force: bool = typer.Option(False, "--force", help="Replace a finished edge run in --run-dir (the old run stays until the new one has finished)."),
    json_target: Optional[str] = json_option("the run's spec and metrics (spec.json, metrics.json)"),
    quiet: bool = quiet_option(),
    verbose: bool = verbose_option(),
) -> None:
    """Fine-tune a pretrained backbone on a folder of photos; writes a run directory."""
    setup_output(quiet, verbose, json_target)
    from edge.console import is_quiet
    from edge.train import train as train_api

    config = TrainConfig(
        backbone=backbone, weights=weights, alpha=alpha, image_size=image_size, epochs=epochs,
        fine_tune_epochs=fine_tune_epochs, fine_tune_from=fine_tune_from, fine_tune_schedule=fine_tune_schedule,
        fine_tune_views=fine_tune_views, batch_size=batch_size,
        learning_rate=learning_rate, fine_tune_learning_rate=fine_tune_learning_rate, dropout=dropout,
        label_smoothing=label_smoothing, class_weights=class_weights, patience=patience, augment=augment,
        resize_augment=resize_augment, int8_exact=int8_exact, resize=resize,
        split=split, seed=seed, csv=str(csv) if csv else None, csv_allow_outside=csv_allow_outside,
        mixed_precision=mixed_precision, devices=devices,
    )
    try:
        result = train_api(data, run_dir=run_dir, config=config, force=force, resume=resume, quiet=is_quiet())
    except KeyboardInterrupt as exc:
        from edge.console import err_console

        if getattr(exc, "resumable", True):
            err_console.print(
                "[yellow]Interrupted.[/] The run is unfinished; run the same command again (or add --resume) "
                "to continue from the last completed epoch."
            )
        else:
            err_console.print(
                f"[yellow]Interrupted.[/] The replacement was discarded; {getattr(exc, 'run_dir', 'the run directory')} "
                "still holds the previous run.", highlight=False,
            )
        raise typer.Exit(130) from None
    if is_quiet():
        from edge.console import result as print_result

        print_result(result_line(result), highlight=False)
    if json_target is not None:
        import json

        write_json(json_target, json.dumps(result_dict(result), indent=2, default=str))


def result_dict(result) -> dict:
    """What ``--json`` prints: the run directory, its spec.json and its metrics.json."""
    return {"run_dir": str(result.run_dir), "model": str(result.model_path), "seconds": result.seconds,
            "resumed": result.resumed, "spec": result.spec.to_dict(), "metrics": result.metrics}


def result_line(result) -> str:
    """The one line ``-q`` leaves: where the run is and how well it classifies its held-out images."""
    parts = []
    for split in ("test", "val"):
        metrics = result.metrics.get(split) or {}
        if "accuracy" in metrics:
            parts.append(f"{split} accuracy {metrics['accuracy']:.1%}")
    return f"{result.run_dir}: " + (", ".join(parts) if parts else "trained")
