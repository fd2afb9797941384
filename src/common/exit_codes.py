"""The exit codes of every ``finemon`` command: the daemon's, the analysis commands', the CLI's."""

from __future__ import annotations

#: The command did what it was asked.
EXIT_OK = 0
#: It could not: the reason is on stderr, one line.
EXIT_FAILURE = 1
#: A bad command line (argparse's own code for it).
EXIT_USAGE = 2
