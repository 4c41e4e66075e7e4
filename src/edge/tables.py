"""Tables that stay whole at any terminal width: the layout behind every table edge prints.

Cells are never cut: a table whose columns do not fit is not squeezed (rich would print ``1…``,
``onnxrun…``) but laid out again. ``fit`` tries, in order:

1. every column, one row per item (when the terminal is wide enough);
2. the columns not marked ``optional`` (the files edge writes keep the rest);
3. a vertical layout of the columns in 2: per item, its name on a line of its own and
   ``column value`` pairs packed into the width, a pair never split across lines.

Headers may wrap at spaces ("drop pts" over two lines) but cells never wrap, so every file name
and every number appears whole. Long names (runtimes) belong in a footnote: see ``abbreviate``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

PAIR_GAP = "   "  # between column/value pairs in the vertical layout
INDENT = "  "


@dataclass(frozen=True)
class Field:
    """One column: its header, alignment, and whether a narrower table may leave it out."""

    name: str
    justify: str = "right"
    optional: bool = False


def _header_min(name: str) -> int:
    return max((len(word) for word in name.split()), default=0)


def needed_width(fields: Sequence[Field], rows: Sequence[dict[str, str]]) -> int:
    """Columns wide enough for every cell (a header may wrap at its spaces), with rich's borders."""
    total = 1  # the left border
    for field in fields:
        cells = [len(Text.from_markup(row.get(field.name, "")).plain) for row in rows]
        total += max([_header_min(field.name), *cells]) + 3  # padding on both sides and a border
    return total


def fit(rows: Sequence[dict[str, str]], fields: Sequence[Field], width: int, *, key: str | None = None,
        title: str | None = None, styles: Sequence[str | None] | None = None,
        subtitles: Sequence[str] | None = None) -> RenderableType:
    """The rows as a table of ``fields`` that fits ``width`` columns, or the vertical layout.

    ``rows``: one dict per item, column name -> cell text (rich markup allowed). ``key``: the
    column naming each item (default: the first). ``styles``: a rich style per row (or None).
    ``subtitles``: per item, text shown after its name in the vertical layout only.
    """
    key = key or fields[0].name
    styles = list(styles) if styles is not None else [None] * len(rows)
    for chosen in (list(fields), [f for f in fields if not f.optional]):
        if needed_width(chosen, rows) <= width:
            return _horizontal(rows, chosen, title, styles)
    return _vertical(rows, [f for f in fields if not f.optional], width, key, title, styles, subtitles)


def _horizontal(rows, fields: Sequence[Field], title: str | None, styles) -> Table:
    table = Table(title=title, title_justify="left", box=box.HEAVY_HEAD)
    for field in fields:
        cells = [len(Text.from_markup(row.get(field.name, "")).plain) for row in rows]
        table.add_column(field.name, justify=field.justify,  # type: ignore[arg-type]
                         min_width=max([_header_min(field.name), *cells]), overflow="fold")
    for row, style in zip(rows, styles):
        table.add_row(*(row.get(field.name, "") for field in fields), style=style)
    return table


def _vertical(rows, fields: Sequence[Field], width: int, key: str, title: str | None, styles,
              subtitles: Sequence[str] | None) -> Group:
    parts: list[RenderableType] = []
    if title:
        parts.append(Text.from_markup(f"[italic]{title}[/]", overflow="fold"))
    for index, (row, style) in enumerate(zip(rows, styles)):
        head = Text.from_markup(f"[bold]{row.get(key, '')}[/]", overflow="fold")
        if subtitles and subtitles[index]:
            head.append("  ")
            head.append_text(Text.from_markup(subtitles[index]))
        if style:
            head.stylize(style)
        parts.append(head)
        pairs = [Text.assemble((f"{field.name} ", "dim"), Text.from_markup(row.get(field.name, "")))
                 for field in fields if field.name != key]
        for line in pack(pairs, width - len(INDENT)):
            text = Text(INDENT, overflow="fold")
            text.append_text(line)
            if style:
                text.stylize(style)
            parts.append(text)
    return Group(*parts)


def pack(pairs: Sequence[Text], width: int, gap: str = PAIR_GAP) -> list[Text]:
    """``pairs`` joined by ``gap`` into lines of at most ``width`` cells, never splitting a pair."""
    lines: list[Text] = []
    current: Text | None = None
    for pair in pairs:
        if current is not None and current.cell_len + len(gap) + pair.cell_len <= width:
            current.append(gap)
            current.append_text(pair)
            continue
        if current is not None:
            lines.append(current)
        current = pair.copy()
    if current is not None:
        lines.append(current)
    return lines


_VERSIONED = re.compile(r"\s+(v?\d[\w.+-]*|\().*$")


def short_name(long: str) -> str:
    """``"LiteRT 2.3.0 (XNNPACK)"`` -> ``"LiteRT"``, ``"Core ML (macOS)"`` -> ``"Core ML"``:
    the words before the first version number or parenthesis."""
    short = _VERSIONED.sub("", long.strip())
    return short or long.strip()


def abbreviate(names: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Short forms for long names (one per distinct name) and the footnote lines that spell them out.

    Two different long names with the same short form get a number each (``LiteRT¹``, ``LiteRT²``).
    A name that is already short gets no footnote.
    """
    distinct = list(dict.fromkeys(n for n in names if n))
    by_short: dict[str, list[str]] = {}
    for name in distinct:
        by_short.setdefault(short_name(name), []).append(name)
    mapping: dict[str, str] = {}
    notes: list[str] = []
    for short, longs in by_short.items():
        for i, name in enumerate(longs, 1):
            label = short if len(longs) == 1 else f"{short}{_superscript(i)}"
            mapping[name] = label
            if label != name:
                notes.append(f"{label} = {name}")
    return mapping, notes


def _superscript(number: int) -> str:
    return str(number).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))


def wrapped(head: str, facts: Sequence[str], width: int, gap: str = ", ") -> Group:
    """``head`` and its facts (rich markup each) on one line, wrapped only between facts (later lines
    indented), so no number or name is split across lines."""
    texts = [Text.from_markup(fact) for fact in facts if fact]
    first = Text.from_markup(head)
    if texts and first.plain:
        first.append(" ")
        first.append_text(texts[0])
        texts[0] = first
    elif not texts:
        texts = [first]
    out = []
    for i, line in enumerate(pack(texts, width - len(INDENT), gap)):
        text = Text(INDENT if i else "", overflow="fold")
        text.append_text(line)
        out.append(text)
    return Group(*out)
