"""What the daemon (``monitor``) and the analysis commands (``analysis``) both read.

:mod:`common.contract` (the output contract: columns, partitions, file names),
:mod:`common.objectstore` (S3 and S3-compatible stores) and :mod:`common.version` (finemon's
version). It imports nothing else of ours, so both sides may import it.
"""
