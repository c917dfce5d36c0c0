"""A read transaction of the read-model database sees one snapshot in all its statements, on
both databases: what another connection commits meanwhile shows in the next read transaction,
never halfway through one (a webhook delivery read PENDING beside the attempt that made it
SUCCEEDED, a page beside a count from another moment). Reads that need no snapshot may go
without a transaction (`autocommit()`), which leaves the next transaction unchanged."""
from __future__ import annotations

from projections.database import ViewDatabase
from subledger.storage import Database


def test_a_read_transaction_sees_one_snapshot(database_url: str) -> None:
    reader = ViewDatabase.open(Database.from_url(database_url), pool_size=2)
    writer = ViewDatabase.open(Database.from_url(database_url), pool_size=2)  # another connection
    try:
        with writer.transaction() as cursor:
            cursor.execute("CREATE TABLE snapshot_probe (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
            cursor.execute("INSERT INTO snapshot_probe (id, v) VALUES (1, 1)")

        def read(cursor) -> tuple[int, int]:
            row = cursor.execute("SELECT COUNT(*) AS n, MAX(v) AS v FROM snapshot_probe").fetchone()
            return int(row["n"]), int(row["v"])

        with reader.transaction(readonly=True) as cursor:
            assert read(cursor) == (1, 1)
            with writer.transaction() as other:
                other.execute("UPDATE snapshot_probe SET v = 2 WHERE id = 1")
                other.execute("INSERT INTO snapshot_probe (id, v) VALUES (2, 2)")
            assert read(cursor) == (1, 1)  # committed meanwhile: not seen by this transaction
        with reader.transaction(readonly=True) as cursor:
            assert read(cursor) == (2, 2)
        with reader.transaction() as cursor:  # and a writing transaction still writes
            cursor.execute("DELETE FROM snapshot_probe WHERE id = 2")
        with reader.transaction(readonly=True) as cursor:
            assert read(cursor) == (1, 2)
    finally:
        reader.close()
        writer.close()


def test_autocommit_reads_and_leaves_transactions_as_they_were(database_url: str) -> None:
    """`autocommit()` reads each statement on its own (a user's key), and the connection it
    borrowed goes back to the pool in transaction mode: a later transaction that fails still
    leaves nothing behind. One connection in the pool, so the same one is borrowed again."""
    db = ViewDatabase.open(Database.from_url(database_url), pool_size=1)
    try:
        with db.transaction() as cursor:
            cursor.execute("CREATE TABLE autocommit_probe (id INTEGER PRIMARY KEY)")
            cursor.execute("INSERT INTO autocommit_probe (id) VALUES (1)")
        with db.autocommit() as cursor:
            assert cursor.execute("SELECT id FROM autocommit_probe").fetchall() == [{"id": 1}]
        try:
            with db.transaction() as cursor:
                cursor.execute("INSERT INTO autocommit_probe (id) VALUES (2)")
                raise RuntimeError("the transaction fails after its insert")
        except RuntimeError:
            pass
        with db.autocommit() as cursor:
            assert cursor.execute("SELECT id FROM autocommit_probe ORDER BY id").fetchall() == [{"id": 1}]
    finally:
        db.close()
