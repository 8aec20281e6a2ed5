"""On-demand failures, so clients can be tested against the ways the real service misbehaves.

Kinds:
- ``error``: answer 5xx (Fault code 10000, SystemFault; QUICKBOOKS.md §2) before doing anything.
- ``rate_limit``: answer 429 (code 3001, XML body; QUICKBOOKS.md §3) before doing anything.
- ``lost``: do the work (the record is committed), then close the socket mid-response (headers and half
  the body sent), so the client sees a truncated answer.
- ``dropped``: do the work, then close the socket without sending a byte (client: connection reset/EOF).
- ``error_after_commit``: do the work, then answer 500 (code 10000) as if it failed.
Plus latency (fixed or uniform random range) and a seeded random mode mixing the kinds for storm tests.

The machinery is the core's emulator toolkit (``integration_core.emulation``), shared by every emulator.
"""

from integration_core.emulation import FAULT_KINDS, PRE_COMMIT, Fault, FaultInjector

__all__ = ["FAULT_KINDS", "PRE_COMMIT", "Fault", "FaultInjector"]
