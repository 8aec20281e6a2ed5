"""The embedding recipes of docs/embedding.md as importable code (tests/test_embedding.py serves each)."""
