"""``integration-core console operator ...``: set (password or token, optionally tenant-limited or
one-time), list and remove; only scrypt hashes are stored."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

from integration_core.cli import main
from integration_core.config import Config
from integration_core.console.operators import authenticate
from integration_core.hub import Hub
from integration_core.store.schema import console_operators


def test_operator_commands(tmp_path: Path) -> None:
    env = {"IC_DATABASE_URL": f"sqlite:///{tmp_path / 'ic.sqlite3'}", "IC_KEY_FILE": str(tmp_path / "ic.key")}
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0  # only `db upgrade` creates a database
    short = runner.invoke(main, ["console", "operator", "set", "alice", "--password-stdin"], input="short\n", env=env)
    assert short.exit_code == 1 and "at least 12 characters" in short.output
    ok = runner.invoke(main, ["console", "operator", "set", "alice", "--password-stdin"],
                       input="a long enough password\n", env=env)
    assert ok.exit_code == 0, ok.output
    tok = runner.invoke(main, ["console", "operator", "set", "bot", "--token", "--tenant", "acme", "--one-time"],
                        env=env)
    assert tok.exit_code == 0, tok.output
    token = tok.output.split("token (shown only now): ", 1)[1].strip()
    listed = runner.invoke(main, ["console", "operator", "list"], env=env)
    assert "alice\tpassword\t*" in listed.output and "bot\ttoken one-time\tacme" in listed.output
    assert token not in listed.output
    hub = Hub(Config(database_url=env["IC_DATABASE_URL"], key_file=env["IC_KEY_FILE"]))
    with hub.engine.connect() as db:
        hashes = list(db.execute(sa.select(console_operators.c.secret_hash)).scalars())
    assert all(h.startswith("scrypt$16384$8$5$") for h in hashes)  # the production cost
    assert not any("a long enough password" in h or token in h for h in hashes)
    assert authenticate(hub.engine, "alice", "a long enough password") is not None
    assert authenticate(hub.engine, "alice", "a wrong password!!") is None
    op = authenticate(hub.engine, "bot", token)
    assert op is not None and op.tenant_id == "acme"
    assert authenticate(hub.engine, "bot", token) is None  # one-time: spent
    assert "(spent)" in runner.invoke(main, ["console", "operator", "list"], env=env).output
    bad = runner.invoke(main, ["console", "operator", "set", "no spaces", "--token"], env=env)
    assert bad.exit_code == 1 and "operator name" in bad.output
    assert runner.invoke(main, ["console", "operator", "remove", "alice"], env=env).exit_code == 0
    gone = runner.invoke(main, ["console", "operator", "remove", "alice"], env=env)
    assert gone.exit_code == 1 and "no console operator" in gone.output
    hub.engine.dispose()
