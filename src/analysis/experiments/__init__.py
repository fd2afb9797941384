"""Experiments over finemon datasets: ``finemon compare`` (two sets of runs, container by
container, with intervals that respect autocorrelation) and ``finemon check`` (bounds a CI job
gates on).

Modules, one job each: :mod:`~analysis.experiments.runs` (the runs' manifests: experiment,
variant, phases), :mod:`~analysis.experiments.selection` (what ``--baseline``/``--comparison``/
``--run`` select), :mod:`~analysis.experiments.workload` (matching containers across runs),
:mod:`~analysis.experiments.series` (the per-tick series read with DuckDB),
:mod:`~analysis.experiments.statistics` (the moving-block bootstrap),
:mod:`~analysis.experiments.compare`, :mod:`~analysis.experiments.render` (text, json,
markdown, html) and :mod:`~analysis.experiments.check`. Importing this package imports none of
them (nor duckdb or numpy).
"""
