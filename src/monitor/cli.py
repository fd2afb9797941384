"""Command-line entry point of ``finemon``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from monitor import __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``finemon`` command; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["--version"], ["version"]):
        print(f"finemon {__version__}")
        return 0
    print(f"finemon {__version__}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
