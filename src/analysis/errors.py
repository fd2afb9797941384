"""The errors of the analysis commands: each message is one line, fit for the terminal."""

from __future__ import annotations

import importlib
from types import ModuleType

#: How to get the optional dependencies of the analysis commands (pip resolves the extra from
#: the finemon already installed; from a source checkout ``pip install '.[analysis]'`` does too).
INSTALL_HINT = "pip install 'finemon[analysis]'"
#: The name a bucket's objects (their Arrow dataset) are registered under in DuckDB.
OBJECTS_TABLE = "_finemon_objects"
#: How DuckDB words a failed scan of them; what follows is pyarrow's error.
_OBJECTS_SCAN_FAILED = f"reading the stream registered as '{OBJECTS_TABLE}' failed: "


class AnalysisError(Exception):
    """A dataset, a query or an output the analysis commands cannot handle; one-line message."""


class MissingExtraError(AnalysisError):
    """An optional dependency of the ``analysis`` extra (duckdb, plotly) is not installed."""


class UnreadableFilesWarning(UserWarning):
    """Some ``.parquet`` files of a dataset cannot be read (empty, truncated, not Parquet) and
    were left out; the message names them. The commands print it as one line on stderr."""


def require(module: str) -> ModuleType:
    """Import ``module`` from the ``analysis`` extra, or raise :class:`MissingExtraError`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is not installed (it comes with the analysis extra: {INSTALL_HINT})"
        ) from exc


def one_line(message: str) -> str:
    """``message`` on one line. DuckDB's errors span several: the message, then ``LINE n:`` and
    the statement with a caret under the bad token. The statement is left out: on one line the
    caret points nowhere, and it is often finemon's own SQL (the view over the files), which
    means nothing to the user."""
    detail = message.partition(_OBJECTS_SCAN_FAILED)[2]
    if detail:
        # pyarrow fetching a bucket's object failed: the store is down, or the object was
        # replaced since the listing, and the store's error rarely says which.
        return (
            f"reading the bucket failed ({one_line(detail)}); if a compaction replaced or "
            "removed an object since the listing, run the command again"
        )
    lines: list[str] = []
    for part in message.splitlines():
        if part.startswith("LINE ") and ":" in part:
            break
        if part.strip():
            lines.append(part.strip())
    return " ".join(lines)
