import sqlalchemy as sa


def test_database_is_usable(hub):
    with hub.engine.connect() as db:
        assert db.execute(sa.text("SELECT 1")).scalar() == 1
    assert hub.engine.dialect.name in ("sqlite", "postgresql")
