"""The catalogue as the metric tables of docs/metrics.md and the lists of other docs pages.

The tables sit between ``<!-- catalogue: TABLE -->`` and ``<!-- /catalogue -->`` markers, the
lists between ``<!-- catalogue-list: NAME -->`` and ``<!-- /catalogue-list -->``: written by
``python -m common.catalogue --write FILE`` (``--check`` fails when the file is not up to date,
``--markdown`` prints the tables).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from common.catalogue.index import ENTRIES, TABLES
from common.catalogue.prometheus import prometheus_default_markdown

_HEADER = (
    "| Name | Kind | Unit | Labels | Source | cgroup | Description |\n"
    "| --- | --- | --- | --- | --- | --- | --- |\n"
)
_MARKED = re.compile(r"(<!-- catalogue: ([a-z0-9-]+) -->\n)(.*?)(<!-- /catalogue -->)", re.DOTALL)
_LISTED = re.compile(
    r"(<!-- catalogue-list: ([a-z0-9-]+) -->\n)(.*?)(<!-- /catalogue-list -->)", re.DOTALL
)

#: Generated lists besides the tables, by marker name (``<!-- catalogue-list: NAME -->``, in
#: any docs page).
LISTS = {"prometheus-default": prometheus_default_markdown}


def render_lists(text: str) -> str:
    """``text`` with each marked list replaced by the catalogue's; ValueError for an unknown
    list."""
    unknown = sorted({m.group(2) for m in _LISTED.finditer(text)} - set(LISTS))
    if unknown:
        raise ValueError(f"unknown lists: {unknown}")
    return _LISTED.sub(lambda m: m.group(1) + LISTS[m.group(2)]() + m.group(4), text)


def markdown_table(table: str) -> str:
    """The docs table ``table`` (header and one row per entry, each line ending in a newline).

    Raises ValueError for a table that is not in :data:`TABLES`.
    """
    if table not in TABLES:
        raise ValueError(f"no catalogue table {table!r}")
    rows = [entry.markdown_row() for entry in ENTRIES if entry.table == table]
    return _HEADER + "".join(f"{row}\n" for row in rows)


def render_markdown(text: str) -> str:
    """``text`` (docs/metrics.md) with each marked table replaced by the catalogue's.

    Raises ValueError when a table of :data:`TABLES` is not marked exactly once, or a marker
    names an unknown table.
    """
    found = [match.group(2) for match in _MARKED.finditer(text)]
    missing = [table for table in TABLES if found.count(table) != 1]
    unknown = sorted(set(found) - set(TABLES))
    if missing or unknown:
        raise ValueError(f"tables not marked exactly once: {missing}; unknown tables: {unknown}")
    return render_lists(
        _MARKED.sub(
            lambda m: m.group(1) + markdown_table(m.group(2)) + m.group(4),
            text,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m common.catalogue``: print the tables, or write or check the docs."""
    parser = argparse.ArgumentParser(
        prog="python -m common.catalogue",
        description="The catalogue of finemon's metrics as markdown tables.",
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--markdown", action="store_true", help="print every table")
    group.add_argument(
        "--write", type=Path, metavar="FILE", help="rewrite the marked tables of FILE"
    )
    group.add_argument(
        "--check", type=Path, metavar="FILE", help="exit 1 if the tables of FILE are not current"
    )
    args = parser.parse_args(argv)
    if args.markdown:
        for table in TABLES:
            sys.stdout.write(f"<!-- catalogue: {table} -->\n{markdown_table(table)}")
            sys.stdout.write("<!-- /catalogue -->\n\n")
        return 0
    path: Path = args.write or args.check
    try:
        text = path.read_text(encoding="utf-8")
        # A page without tables (docs/prometheus.md) may hold lists.
        rendered = render_markdown(text) if _MARKED.search(text) else render_lists(text)
    except (OSError, ValueError) as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if rendered != text:
            print(
                f"{path}: the metric tables differ from the catalogue; run "
                f"python -m common.catalogue --write {path}",
                file=sys.stderr,
            )
            return 1
        return 0
    if rendered != text:
        path.write_text(rendered, encoding="utf-8")
    return 0
