"""The architecture's two mechanical rules, checked on every run: the core names no provider (everything a
provider knows lives in its plugin), and no core module grows past one responsibility's size."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from integration_core.plugins import ENTRY_POINT_GROUP

CORE = Path(__file__).resolve().parents[1] / "integration_core"
MAX_LINES = 450
# Names that stand for a provider without being its entry point's name (the company behind one).
OTHER_NAMES = ("intuit",)


def _provider_words() -> set[str]:
    words = set(OTHER_NAMES)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.value.startswith("integration_core."):
            continue  # the core's own stub providers
        words.add(ep.name.lower())
        words.add(ep.name.lower().split("_")[0])  # "zoho_books" is also written "Zoho Books"
    return words


def _core_files() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def test_the_core_names_no_provider() -> None:
    words = _provider_words()
    assert len(words) > len(OTHER_NAMES), "no provider plugin is installed: nothing to check against"
    pattern = re.compile("|".join(re.escape(w) for w in sorted(words)), re.IGNORECASE)
    found = [f"{p.relative_to(CORE.parent)}:{n}: {line.strip()}"
             for p in _core_files() for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_no_core_module_is_over_the_size_of_one_responsibility() -> None:
    sizes = {str(p.relative_to(CORE.parent)): len(p.read_text().splitlines()) for p in _core_files()}
    assert len(sizes) > 20
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
