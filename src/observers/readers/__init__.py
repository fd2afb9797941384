"""Kernel-file readers: cgroup v1 and v2 interface files, ``/proc/<pid>`` files, mountinfo.

The only code in finemon that parses a kernel file. Each file has one pure
``parse_<thing>(data, path)`` that turns its bytes into a typed value (a frozen slots dataclass,
a tuple or an int; a key the running kernel lacks is ``None``, a key it adds is ignored by the
typed fields and kept in ``values``, a malformed line raises
:class:`~observers.readers.errors.MalformedFileError` naming the file and the line), and a thin
``read_<thing>(directory)`` that reads the file and parses it. The samplers call the parse
functions on bytes they re-read through kept descriptors.

Modules: :mod:`~observers.readers.cgroup_v2`, :mod:`~observers.readers.cgroup_v1`,
:mod:`~observers.readers.procfs`, :mod:`~observers.readers.mountinfo`; errors and what an errno
means in :mod:`~observers.readers.errors`. Nothing here imports the capture library, the
samplers or discovery: data flows from here, never back.
"""

from observers.readers.errors import (
    AccessDeniedError,
    MalformedFileError,
    ReaderError,
    UnsupportedError,
    VanishedError,
    oserror_outcome,
)

__all__ = [
    "AccessDeniedError",
    "MalformedFileError",
    "ReaderError",
    "UnsupportedError",
    "VanishedError",
    "oserror_outcome",
]
