"""The watched agent's own report: a Datadog intake stand-in and scrapes of its telemetry.

Modules, one job each: :mod:`~monitor.intake.payload` (the agent's protobuf messages, defined
from their field numbers), :mod:`~monitor.intake.decode` (request bodies to typed series),
:mod:`~monitor.intake.record` (series into the capture at their own timestamps, as
``target.<metric>``), :mod:`~monitor.intake.server` (the HTTP server),
:mod:`~monitor.intake.scrape` (``--target-metrics``) and :mod:`~monitor.intake.flags` (the
flags). The server's libraries (uvicorn, starlette, protobuf, zstandard) are the ``intake``
extra; nothing here is imported unless ``finemon run`` is asked for the intake or a scrape.
See docs/intake.md.
"""
