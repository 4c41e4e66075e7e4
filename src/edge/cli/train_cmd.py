"""``edge train``: options -> ``edge.train.train``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edge.backbones import BACKBONES, DEFAULT_BACKBONE
from edge.cli.app import app


@app.command(no_args_is_help=True)
def train(
    data: Path = typer.Argument(..., help="Folder of class sub-folders, a folder split into train/, val/ and optional test/, or a CSV file."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Where the run goes (default: runs/<data folder name>, a new name if taken)."),
    backbone: str = typer.Option(DEFAULT_BACKBONE, "--backbone", help=f"One of: {', '.join(BACKBONES)}."),
    weights: str = typer.Option("imagenet", "--weights", help="imagenet (Keras download/cache), none (train from scratch), or PATH to a weights file."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Square input size in pixels (default: the backbone's own, e.g. 224)."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Width multiplier for MobileNet backbones (e.g. 0.35, 0.5, 1.0)."),
    epochs: int = typer.Option(20, "--epochs", help="Stage 1 epochs: the head on cached bottleneck features (whole network with --weights none)."),
    fine_tune_epochs: int = typer.Option(10, "--fine-tune-epochs", help="Stage 2 epochs: fine-tune the top backbone layers (0 skips it)."),
    fine_tune_from: Optional[str] = typer.Option(None, "--fine-tune-from", help="First backbone layer to unfreeze (default: the backbone's own choice)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Global batch size."),
    learning_rate: float = typer.Option(1e-3, "--lr", help="Learning rate of stage 1."),
    fine_tune_learning_rate: float = typer.Option(1e-4, "--fine-tune-lr", help="Learning rate of stage 2."),
    dropout: float = typer.Option(0.2, "--dropout", help="Dropout before the softmax head."),
    label_smoothing: float = typer.Option(0.1, "--label-smoothing", help="Label smoothing of the cross-entropy loss."),
    class_weights: str = typer.Option("auto", "--class-weights", help="auto (balanced when classes are imbalanced >1.5x), balanced, none."),
    patience: int = typer.Option(5, "--patience", help="Early stopping patience in epochs on val accuracy (0 = off); best weights restored."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Flip/rotate/zoom/contrast/brightness on training images."),
    split: str = typer.Option("80/10/10", "--split", help="Train/val/test percentages for a folder or CSV dataset."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="CSV of filename,label (filenames relative to DATA)."),
    seed: int = typer.Option(42, "--seed", help="Seed for the split, initialisation and augmentation."),
    mixed_precision: str = typer.Option("auto", "--mixed-precision", help="auto (on for GPUs with float16 units), on, off."),
    devices: str = typer.Option("auto", "--devices", help="auto, cpu, gpu, or cpu:N (mirror over N logical CPUs)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --run-dir (running the same command again does too)."),
    force: bool = typer.Option(False, "--force", help="Replace a finished run in --run-dir."),
) -> None:
    """Fine-tune a pretrained backbone on a folder of photos; writes a run directory."""
    from edge.data.split import parse_fractions
    from edge.train import TrainConfig
    from edge.train import train as train_api

    config = TrainConfig(
        backbone=backbone, weights=weights, alpha=alpha, image_size=image_size, epochs=epochs,
        fine_tune_epochs=fine_tune_epochs, fine_tune_from=fine_tune_from, batch_size=batch_size,
        learning_rate=learning_rate, fine_tune_learning_rate=fine_tune_learning_rate, dropout=dropout,
        label_smoothing=label_smoothing, class_weights=class_weights, patience=patience, augment=augment,
        split=parse_fractions(split), seed=seed, csv=str(csv) if csv else None,
        mixed_precision=mixed_precision, devices=devices,
    )
    _check_choice("--class-weights", class_weights, ("auto", "balanced", "none"))
    _check_choice("--mixed-precision", mixed_precision, ("auto", "on", "off"))
    try:
        train_api(data, run_dir=run_dir, config=config, force=force, resume=resume)
    except KeyboardInterrupt:
        from edge.console import err_console

        err_console.print(
            "[yellow]Interrupted.[/] The run is unfinished; run the same command again (or add --resume) "
            "to continue from the last completed epoch."
        )
        raise typer.Exit(130) from None


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    from edge.errors import EdgeError

    if value not in choices:
        raise EdgeError(f"{option} must be one of {', '.join(choices)}, not '{value}'.")
