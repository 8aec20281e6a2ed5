"""Benchmarks of integration-core: ``python -m bench [--quick] [--only NAME ...]`` prints one table."""
