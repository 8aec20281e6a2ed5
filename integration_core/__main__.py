"""``python -m integration_core`` is the ``integration-core`` command."""

from .cli import main

main()
