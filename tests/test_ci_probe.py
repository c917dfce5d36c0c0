import os

import psycopg
import redis


def test_env_vars_set():
    assert os.environ["SUBLEDGER_TEST_POSTGRES_URL"].startswith("postgresql://")
    assert os.environ["SUBLEDGER_TEST_REDIS_URL"].startswith("redis://")


def test_postgres():
    with psycopg.connect(os.environ["SUBLEDGER_TEST_POSTGRES_URL"]) as conn:
        row = conn.execute("select current_database(), current_user, current_setting('max_connections'), current_setting('fsync')").fetchone()
        assert row[0] == "subledger_test"
        assert row[2] == "300"
        conn.execute("create table if not exists probe (x int)")
        conn.execute("insert into probe values (1)")


def test_redis():
    r = redis.Redis.from_url(os.environ["SUBLEDGER_TEST_REDIS_URL"])
    assert r.ping()
    r.set("probe", "1")
    assert r.get("probe") == b"1"
