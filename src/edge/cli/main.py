"""The console entry point: runs the typer app with edge's error handling.

User errors end in one sentence and exit 2, Ctrl-C in exit 130, usage errors as click shows them.
"""

from __future__ import annotations

import sys

import typer


def main() -> None:
    """Console entry point: user errors end in one sentence and exit 2, Ctrl-C in exit 130."""
    from edge.cli import commands  # noqa: F401  (registers the commands)
    from edge.cli.app import app
    from edge.console import err_console
    from edge.errors import EdgeError

    try:
        code = app(prog_name="edge", standalone_mode=False)  # returns the code of a typer.Exit instead of raising it
        if isinstance(code, int) and code:
            sys.exit(code)
    except EdgeError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]Interrupted.[/]")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("[yellow]Aborted.[/]")
        sys.exit(130)
    except Exception as exc:  # usage errors from typer's click layer (bad option, missing argument)
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        raise
