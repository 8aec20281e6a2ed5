"""The toolkit every provider emulator is built from, so an emulator holds only its service's behaviour:

- :mod:`.faults`: on-demand and random failures (errors, 429, lost and dropped answers, latency);
- :mod:`.wsgi`: a threaded loopback WSGI server that can cut a connection mid-answer, the request and
  response types with money as JSON numbers, and the lifecycle (start, stop, context manager, fixtures).
"""

from .faults import FAULT_KINDS, PRE_COMMIT, Fault, FaultInjector
from .wsgi import (
    LoopbackEmulator,
    Request,
    Response,
    default_redirect_uri,
    dumps,
    emulator_factory,
    jsonable,
    read_request,
)

__all__ = [
    "FAULT_KINDS", "PRE_COMMIT", "Fault", "FaultInjector", "LoopbackEmulator", "Request", "Response",
    "default_redirect_uri", "dumps", "emulator_factory", "jsonable", "read_request",
]
