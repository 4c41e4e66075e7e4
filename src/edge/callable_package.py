"""Stage packages that are also the API function of the same name.

``edge.train``, ``edge.export`` and ``edge.bench`` are packages (``import edge.export.gate``,
``edge.train.TrainConfig``) and, called, run their stage (``edge.train("data/")``), so
``from edge import train`` means the same object however the package was first imported.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any


class _CallablePackage(types.ModuleType):
    __api__: Callable[..., Any]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__api__(*args, **kwargs)


def make_callable(package_name: str, api: Callable[..., Any]) -> None:
    """Make the package ``package_name`` callable as ``api`` (called from its ``__init__``)."""
    module = sys.modules[package_name]
    module.__class__ = _CallablePackage
    module.__api__ = api  # type: ignore[attr-defined]
