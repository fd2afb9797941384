"""``python -m monitor.shipping``: the uploader process (see :mod:`monitor.shipping.cli`)."""

from monitor.shipping.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
