"""Finding the demo apps (``ios_demo/``, ``web_demo/``) that consume edge's exports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edge.errors import EdgeError

CHECKOUT = Path(__file__).resolve().parents[2]  # the edge checkout this package runs from (editable install)


def find_app_dir(name: str, app_dir: Path | None, is_app: Callable[[Path], bool], what: str, needs: str) -> Path:
    """``app_dir``, else ``./NAME``, else the one in this edge checkout -- the first that ``is_app``.

    ``what`` names the app ("the edge web demo"), ``needs`` what makes a folder one (for the error).
    """
    candidates = [Path(app_dir)] if app_dir is not None else [Path.cwd() / name, CHECKOUT / name]
    for candidate in candidates:
        if is_app(candidate):
            return candidate.resolve()
    if app_dir is not None:
        raise EdgeError(f"{app_dir} is not {what} (no {needs} in it).")
    raise EdgeError(f"No {name}/ folder here; pass --app PATH to the {name} folder of an edge checkout.")
