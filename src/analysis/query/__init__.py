"""The query layer over finished finemon files, split by job; every view presents it.

- :mod:`.files`: the data files, their footers and signatures, the runs' manifests
- :mod:`.index`: runs, nodes, containers and metrics as typed values
- :mod:`.names`: the one rule containers are named by
- :mod:`.search`: the one rule containers and metrics are searched by
- :mod:`.series`: downsampling in DuckDB, the series it gives
- :mod:`.markers`: OOM kills, container starts and stops
- :mod:`.studies`, :mod:`.analyze`: studies of a series, of a container
- :mod:`.sql`: read-only SQL in a sandbox
- :mod:`.explorer`: :class:`~analysis.query.explorer.Explorer`, the entry point composing them

Importing the package is cheap: :mod:`.names` and :mod:`.search` need neither duckdb nor numpy.
"""
