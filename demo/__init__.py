"""The end-to-end demo (``python -m demo`` / ``make demo``): the main job on a local Zoho Books emulator.

Not part of the core: it wires the core, the Zoho Books plugin, its emulator and the reference host.
"""
