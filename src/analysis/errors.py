"""The errors of the analysis commands: each message is one line, fit for the terminal."""

from __future__ import annotations

import importlib
from types import ModuleType

#: How to get the optional dependencies of the analysis commands.
INSTALL_HINT = "pip install 'finemon[analysis]'"


class AnalysisError(Exception):
    """A dataset, a query or an output the analysis commands cannot handle; one-line message."""


class MissingExtraError(AnalysisError):
    """An optional dependency of the ``analysis`` extra (duckdb, plotly) is not installed."""


def require(module: str) -> ModuleType:
    """Import ``module`` from the ``analysis`` extra, or raise :class:`MissingExtraError`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is not installed (it comes with the analysis extra: {INSTALL_HINT})"
        ) from exc


def one_line(message: str) -> str:
    """``message`` on one line: DuckDB's errors span several (a caret under the bad token)."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())
