"""``python -m monitor.compaction``: the daemon's compaction process."""

from monitor.compaction.process import main

if __name__ == "__main__":
    raise SystemExit(main())
