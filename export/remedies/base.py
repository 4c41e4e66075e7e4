"""What a remedy is: a named, registered way to make an int8 artifact that meets its budget."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.export.gate import ExportContext
from edge.export.report import Entry
from edge.formats import Format

INT8 = "int8"


@dataclass(frozen=True)
class Remedy:
    name: str  # the word formats list in Format.remedies
    describe: Callable[[ExportContext], str]  # the sentence recorded in the report
    attempt: Callable[[ExportContext, Format], Entry]  # an unfinalized entry (file at entry.path)
    applies: Callable[[ExportContext, Format], bool] = lambda ctx, fmt: True


def attempt_record(remedy: str, entry: Entry) -> dict[str, Any]:
    return {
        "remedy": remedy, "status": entry.status, "accuracy": entry.accuracy, "drop_pts": entry.drop_pts,
        "agreement": entry.agreement, "size_bytes": entry.size_bytes,
        "export_seconds": round(entry.export_seconds, 1), "reason": entry.reason,
    }
