"""Keeps ``docs/writing-a-provider.md`` honest: what it names must exist on this tree.

Every provider and command hook is in the guide's hook table with the hookspec's own arguments; the
``ctx``/``app`` members, model and error constructors, commands, environment variables, files, test names
and links it mentions exist; its minimal contract test runs as printed; and the docs index and README link
to it.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import attrs
import click

from integration_core import errors, hookspecs, models
from integration_core.cli import main
from integration_core.context import AppContext, Mappings, ProviderContext, Secrets
from integration_core.hub import Hub
from integration_core.providers import ledger

ROOT = Path(__file__).resolve().parent.parent
GUIDE_PATH = ROOT / "docs" / "writing-a-provider.md"
GUIDE = GUIDE_PATH.read_text(encoding="utf-8")
PLACEHOLDER = "xero"  # the guide's example of a new provider's name
SPANS = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", GUIDE, flags=re.S))  # inline code only


def _spec_args(name: str) -> list[str]:
    spec = getattr(hookspecs.ProviderSpec, name, None) or getattr(hookspecs.CommandSpec, name)
    return [p for p in inspect.signature(spec).parameters if p != "self"]


def _call_args(text: str) -> list[str]:
    inner = text[text.index("(") + 1: text.rindex(")")]
    return [a.split("=")[0].strip() for a in inner.split(",") if a.strip() and a.strip() != "..."]


def test_every_hook_is_in_the_hook_table_with_the_hookspecs_arguments() -> None:
    section = GUIDE[GUIDE.index("\n## 3. "): GUIDE.index("\n## 4. ")]
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)\(([^)]*)\)` \|", section, flags=re.M)}
    for name in hookspecs.PROVIDER_HOOKS:
        assert name in rows, f"provider hook {name} is missing from the guide's hook table"
        assert _call_args(rows[name].split("`")[1]) == _spec_args(name), f"arguments of {name} differ from hookspecs"
    unknown = set(rows) - set(hookspecs.PROVIDER_HOOKS)
    assert not unknown, f"the hook table names hooks that do not exist: {unknown}"
    for name in hookspecs.COMMAND_HOOKS:
        assert f"`{name}({', '.join(_spec_args(name))})`" in GUIDE


def test_hook_calls_in_the_text_name_real_arguments() -> None:
    for span in SPANS:
        m = re.fullmatch(r"(\w+)\((.*)\)", span)
        if m and m.group(1) in (*hookspecs.PROVIDER_HOOKS, *hookspecs.COMMAND_HOOKS):
            assert set(_call_args(span)) <= set(_spec_args(m.group(1))), span


def _instances() -> dict[str, Any]:
    conn = models.Connection(id="c", tenant_id="t", environment_id="e", provider="p", name="n")
    ctx = ProviderContext(conn, Secrets({}))
    return {"ctx": ctx, "ctx.secrets": ctx.secrets, "ctx.mappings": Mappings(),
            "app": AppContext("p", {}, Secrets({}))}


def test_ctx_and_app_members_exist() -> None:
    objects = _instances()
    found = re.findall(r"\b(ctx(?:\.secrets|\.mappings)?|app)\.(\w+)", GUIDE)
    assert found
    for owner, member in found:
        if owner == "ctx" and member in ("secrets", "mappings"):
            continue
        assert hasattr(objects[owner], member), f"{owner}.{member} does not exist"


def test_model_and_error_constructors_name_real_fields() -> None:
    checked = 0
    for span in SPANS:
        m = re.match(r"(\w+)\(", span)
        if not m or not span.endswith(")"):
            continue
        cls = getattr(models, m.group(1), None) or getattr(errors, m.group(1), None)
        if not isinstance(cls, type):
            continue
        if attrs.has(cls):
            names = {f.name for f in attrs.fields(cls)}
        else:
            try:
                names = set(inspect.signature(cls).parameters) | {"msg"}
            except ValueError:  # Exception's own constructor: one message
                names = {"msg"}
        for arg in _call_args(span):
            assert arg in names, f"{span}: {cls.__name__} has no {arg!r}"
        checked += 1
    assert checked >= 10


def test_named_errors_exist() -> None:
    for name in set(re.findall(r"\b(\w+Error|WebhookRejected)\b", GUIDE)):
        if name in ("QBOFault",):
            continue
        assert isinstance(getattr(errors, name, None), type), f"integration_core.errors has no {name}"


def test_commands_exist() -> None:
    commands = re.findall(r"(?<![\"\w-])integration-core((?: [a-z][\w-]*)+)", GUIDE)  # not a quoted text
    assert len(commands) >= 8
    for words in commands:
        if words.split()[0] == PLACEHOLDER:
            continue
        group: click.Command = main
        for word in words.split():
            if not isinstance(group, click.Group):
                break
            sub = group.get_command(click.Context(group), word)
            assert sub is not None, f"`integration-core{words}`: no command {word!r}"
            group = sub


def test_environment_variables_exist() -> None:
    source = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "integration_core").rglob("*.py"))
    for name in set(re.findall(r"\bIC_[A-Z_]+\b", GUIDE)):
        assert name in source, f"{name} is not read anywhere in integration_core/"


def test_files_tests_and_links_exist() -> None:
    for span in SPANS:
        path = span.split(":")[0].strip()
        if re.match(r"(integration_core|plugins|bench|tests|docs)/[\w/.-]*$", path):
            assert (ROOT / path).exists(), f"{path} does not exist"
    test_sources = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "plugins").rglob("test_*.py"))
    for name in set(re.findall(r"`(test_\w+)(\.py)?`", GUIDE)):
        if name[1]:
            assert list(ROOT.glob(f"plugins/*/tests/{name[0]}.py")) or (ROOT / "tests" / f"{name[0]}.py").exists()
        else:
            assert f"def {name[0]}(" in test_sources, f"no test named {name[0]}"
    for target in re.findall(r"\]\(([^)#\s]+)", GUIDE):
        if "://" not in target:
            assert (GUIDE_PATH.parent / target).exists(), f"broken link {target}"


def test_index_and_readme_link_to_the_guide() -> None:
    assert "(writing-a-provider.md)" in (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    assert "docs/writing-a-provider.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_minimal_contract_test_runs_as_printed(ic_hub: Hub) -> None:
    block = re.search(r"<!-- contract-test -->\n```python\n(.*?)```", GUIDE, flags=re.S)
    assert block is not None, "the guide's contract test block is missing"
    namespace: dict[str, Any] = {}
    exec(compile(block.group(1), str(GUIDE_PATH), "exec"), namespace)  # noqa: S102 - our own document
    tests = [v for k, v in namespace.items() if k.startswith("test_") and callable(v)]
    assert len(tests) == 1
    ledger.LEDGERS.pop("guide", None)  # a fresh remote account, as the printed test expects
    tests[0](ic_hub)
    assert ledger.ledger("guide").find_invoice("inv-1") is not None  # it really pushed to the remote account
