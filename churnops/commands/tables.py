"""Rich tables that stay readable in an 80-column terminal.

Light borders (header rule only), and no cell is ever cut with an ellipsis: long text folds
onto the next line, and short fixed-width values (stages, times) never wrap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table


def compact_table(title: str | None = None, *, show_header: bool = True) -> Table:
    """A table with a header rule and no vertical borders (``title`` made safe: ``safe_text``)."""
    from rich import box
    from rich.table import Table

    from churnops.commands.common import safe_text

    return Table(
        title=None if title is None else safe_text(title),
        box=box.SIMPLE_HEAD,
        show_header=show_header,
        title_justify="left",
    )


def add_column(table: Table, header: str, *, right: bool = False, keep: bool = False) -> None:
    """``keep``: a short value that must stay on one line (a stage, a time, a number).
    ``header`` is made safe (``safe_text``)."""
    from churnops.commands.common import safe_text

    table.add_column(safe_text(header), justify="right" if right else "left", overflow="fold", no_wrap=keep)
