"""The ``finemon`` command, above the daemon (``monitor``) and the analysis (``analysis``).

:mod:`finemon.cli` builds one parser over every subcommand and hands each to the layer that
runs it; :mod:`finemon.demo` records a small node with the daemon and presents it with the
analysis. Nothing below imports this package.
"""
