"""The typer application, its root options, and the output options every command shares.

Root: ``edge -V/--version``, ``edge -v/--verbose CMD`` (third-party logs back), ``edge -q/--quiet
CMD`` (only errors and the final result), shell completion (``edge --install-completion``).
Every command also takes ``-q``/``-v`` itself, and the ones that write results ``--json FILE|-``
(``-``: the JSON alone on stdout; everything else edge says goes to stderr then).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

HELP = "From a folder of photos to a verified on-device image classifier (TFLite, Core ML, ONNX)."
STDOUT = "-"

def examples(*lines: str) -> str:
    """An "Examples" section for a command's help (the epilog), one command per line."""
    return "[bold]Examples[/]\n" + "\n".join(f"  {escape(line)}" for line in lines)


app = typer.Typer(
    name="edge",
    help=HELP,
    epilog="`edge COMMAND --help` lists a command's options, with examples.\n\n" + examples(
        "edge train flowers/                        # -> runs/flowers",
        "edge export --format tflite,coreml         # the latest finished run under ./runs",
        "edge bench                                 # the newest export under ./runs",
        "edge predict runs/flowers/export/flowers_int8.tflite photo.heic",
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _flags_without_type() -> None:
    """Boolean flags in ``--help`` as flags: typer's rich help gives every option a type column, so
    ``--force`` read ``--force <bool>`` as if it took a value. Flags (``is_flag``) show no type."""
    try:
        from typer.core import TyperOption
    except ImportError:  # another typer layout: its help is left as it is
        return
    original = getattr(TyperOption, "display_type_rich", None)
    if original is None or getattr(original, "_edge_flag_aware", False):
        return

    def display_type_rich(self, ctx):
        return None if getattr(self, "is_flag", False) else original(self, ctx)

    display_type_rich._edge_flag_aware = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_without_type()

_root_flags = {"quiet": False, "verbose": False}


def epilog(*paragraphs: str) -> str:
    return "\n\n".join(p for p in paragraphs if p)


def quiet_option() -> Any:
    return typer.Option(False, "--quiet", "-q", help="Print only errors and the final result.")


def verbose_option() -> Any:
    return typer.Option(False, "--verbose", "-v", help="Show the logs of TensorFlow, coremltools, onnxruntime, ...")


def json_option(what: str) -> Any:
    return typer.Option(None, "--json", metavar="FILE|-",
                        help=f"Also write {what} as JSON to FILE; '-' prints it to stdout, alone.")


def setup_output(quiet: bool = False, verbose: bool = False, json_target: str | Path | None = None) -> None:
    """Apply -q/-v (the command's or the root's) and ``--json -`` to edge's consoles and the logs."""
    from edge import logs
    from edge.console import set_output
    from edge.errors import EdgeError

    quiet = quiet or _root_flags["quiet"]
    verbose = verbose or _root_flags["verbose"]
    if quiet and verbose:
        raise EdgeError("Pass --quiet or --verbose, not both.")
    logs.configure(verbose=verbose)
    set_output(quiet=quiet, json_stdout=json_to_stdout(json_target))


def json_to_stdout(target: str | Path | None) -> bool:
    return target is not None and str(target) == STDOUT


def write_json(target: str | Path | None, text: str) -> Path | None:
    """``--json``: print ``text`` alone on stdout (``-``) or write it to the file (returned)."""
    if target is None:
        return None
    if json_to_stdout(target):
        from edge.console import emit_json

        emit_json(text)
        return None
    from edge.fileio import atomic_write_text

    path = Path(target).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text if text.endswith("\n") else text + "\n")
    return path


def _version(value: bool) -> None:
    if value:
        from edge import __version__

        typer.echo(f"edge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show third-party logs (TensorFlow, absl, coremltools, onnxruntime, tf2onnx)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors and the final result."),
) -> None:
    """From a folder of photos to a verified on-device image classifier (TFLite, Core ML, ONNX)."""
    _root_flags.update(quiet=quiet, verbose=verbose)
    setup_output(quiet, verbose)
