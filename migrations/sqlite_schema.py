"""SQLite: change a table's CHECK constraint in place.

Alembic's batch mode changes a constraint on SQLite by copying the table and dropping the old
one. For ``referral`` that cannot work once data is stored: dropping it deletes its rows first,
which cascades to its events, and the events' append-only triggers abort the migration (and
would lose the audit trail if they did not). A CHECK constraint does not change how rows are
stored, so SQLite's documented procedure for such changes applies instead ("Making Other Kinds
Of Table Schema Changes", https://www.sqlite.org/lang_altertable.html): rewrite the table's
``CREATE TABLE`` text in ``sqlite_master`` with ``writable_schema`` and bump the schema version,
inside the migration's transaction. Stored rows are then converted with ordinary UPDATEs, which
the new constraint checks.
"""

from __future__ import annotations

import re

from alembic import op


def replace_check_constraint(table: str, old_name: str, new_name: str, condition: str) -> None:
    bind = op.get_bind()
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar_one()
    check = r" CHECK \((?:[^()]|\([^()]*\))*\)"  # one level of parentheses inside
    pattern = re.compile("CONSTRAINT " + re.escape(old_name) + check)
    new_sql, found = pattern.subn(lambda _: f"CONSTRAINT {new_name} CHECK ({condition})", sql)
    if found != 1:
        raise RuntimeError(f"{table}: constraint {old_name} not found exactly once")
    version = int(bind.exec_driver_sql("PRAGMA schema_version").scalar_one())
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        bind.exec_driver_sql(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?",
            (new_sql, table),
        )
        bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    finally:
        bind.exec_driver_sql("PRAGMA writable_schema = OFF")
