"""An example host application (billing store) implementing integration-core's host hooks.

Not part of the core: this is what a host writes. See README.md.
"""

from .store import ReferenceHost, UnknownInvoice, from_env

__all__ = ["ReferenceHost", "UnknownInvoice", "from_env"]
