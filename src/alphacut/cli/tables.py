"""Tables and progress that read well in an 80-column terminal and survive a pipe.

A box-drawn rich table shares the terminal's width among its columns, so at 80 columns it
wraps every cell into a tower and cuts names (``isnet-ge…``), and ``| grep NAME`` finds
half a row. These are plain columns instead, as ``docker images`` and ``ollama list`` print
them: a header, then one line per row, each cell whole (a column is as wide as its longest
cell, never cut), two spaces between columns, no box drawing. Colour only on a terminal
(rich leaves it out when the stream is piped, or when ``NO_COLOR`` is set). Callers put the
cells that may hold spaces last, so that ``awk '{print $1}'`` still finds the first column.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from alphacut.cli.common import err

Cell = str | tuple[str, str]
"""A cell's text, or its text and a rich style (``"green"``) used on a terminal only."""

GAP = "  "


def printable(text: str) -> str:
    """``text`` on one line: a control character (a newline or an escape sequence in a key's
    name...) is written as its escape, so a row is always one line and never drives the
    terminal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _split(cell: Cell) -> tuple[str, str]:
    text, style = (cell, "") if isinstance(cell, str) else cell
    return printable(text), style


def render(headers: Sequence[str], rows: Iterable[Sequence[Cell]]) -> list[Text]:
    """The table's lines: headers, then one line per row, columns padded to their widest
    cell (in terminal cells, so wide characters line up), the last column unpadded."""
    table = [[(header, "bold") for header in headers]]
    table += [[_split(cell) for cell in row] for row in rows]
    widths = [max(cell_len(row[i][0]) for row in table) for i in range(len(headers))]
    lines = []
    for row in table:
        line = Text(no_wrap=True, overflow="ignore")
        for i, (text, style) in enumerate(row):
            line.append(text, style or None)
            if i < len(row) - 1:
                line.append(" " * (widths[i] - cell_len(text)) + GAP)
        lines.append(line)
    return lines


def out_console() -> Console:
    """stdout, as the tables need it: never wrapped (``soft_wrap``: a line longer than the
    terminal is the terminal's to fold), no guessed highlighting, colour on a terminal only."""
    return Console(highlight=False, soft_wrap=True)


def print_table(
    headers: Sequence[str], rows: Iterable[Sequence[Cell]], console: Console | None = None
) -> None:
    """Print the table to stdout (or ``console``)."""
    console = console or out_console()
    for line in render(headers, rows):
        console.print(line)


def progress_shown() -> bool:
    """Whether a progress bar belongs on stderr: on a terminal only. Piped or redirected to a
    file, a bar is either redrawn into one line per refresh or printed once at the end,
    box characters and all; the lines that matter (failures, the summary) are printed
    either way."""
    return err.is_terminal
