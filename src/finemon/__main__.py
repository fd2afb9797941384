"""``python -m finemon``: the ``finemon`` command."""

from finemon.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
