"""Writing a transaction's new rows in one round trip.

The unit of work writes each table's new rows with a statement of its own (and reads back
what it generated). :func:`insert_pending` writes the session's pending new objects with
SQLAlchemy Core instead: on PostgreSQL one statement, each row's INSERT a data-modifying
CTE of the last one; on SQLite one multi-row INSERT per table. Nothing is
read back: every value is known before the INSERT (client-side ids and defaults are filled in
on the objects first), except a table's integer key, left to the database (and so written this
way for one row of such a table only: the order of a statement's CTEs is not the order of its
keys). The objects then leave the session (transient, with their values), so nothing writes
them twice.

For plain rows that refer only to rows already written, never to each other: the rows a
create writes after the referral (its routing attempt, events, milestones, tier, filing and
webhook events). Anything else falls back to the unit of work's flush.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, Table, bindparam, insert, inspect
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.statements import built


def _rows_by_table(objects: list[Any]) -> dict[Table, list[dict[str, Any]]] | None:
    """The objects' rows, table by table, with the same columns in every row of a table; None
    when some object is not a plain row of one table or a value must come from the database."""
    found: dict[Table, list[dict[str, Any]]] = {}
    for obj in objects:
        mapper = inspect(obj).mapper
        table = mapper.local_table
        if not isinstance(table, Table) or mapper.relationships or mapper.inherits:
            return None
        values: dict[str, Any] = {}
        for prop in mapper.column_attrs:
            (column,) = prop.columns
            value = getattr(obj, prop.key)
            default = column.default
            if value is None and default is not None:
                if default.is_callable:
                    value = default.arg(None)
                elif default.is_scalar:
                    value = default.arg
                else:
                    return None
                setattr(obj, prop.key, value)
            values[column.key] = value
        found.setdefault(table, []).append(values)
    for table, rows in found.items():
        for column in table.columns:
            empty = [r[column.key] is None for r in rows]
            generated = column.primary_key and isinstance(column.type, Integer)
            if generated and len(rows) > 1:
                return None  # the keys' order must follow the rows' (one INSERT each, in order)
            if column.server_default is not None or generated:
                if all(empty):
                    for r in rows:
                        del r[column.key]
                elif any(empty):
                    return None
    return found


async def insert_pending(session: AsyncSession) -> None:
    """Write the session's pending new objects (module documentation)."""
    # in the order they were added, as the unit of work writes them: the same statement for the
    # same rows every time
    objects = sorted(session.new, key=lambda o: inspect(o).insert_order)
    if not objects:
        return
    if session.dirty or session.deleted:
        await session.flush()  # changes of loaded rows go through the unit of work first
        return
    tables = _rows_by_table(objects)
    if tables is None:
        await session.flush()
        return
    shape = tuple((t.name, len(rows), tuple(rows[0])) for t, rows in tables.items())
    params = [
        {f"{t.name}_{i}_{k}": v for i, row in enumerate(rows) for k, v in row.items()}
        for t, rows in tables.items()
    ]
    for obj in objects:  # first: executing a statement may flush what the session holds
        session.expunge(obj)
    if session.get_bind().dialect.name == "postgresql":
        stmt = built(("insert_pending", shape), lambda: _one_statement(list(tables), shape))
        await session.execute(stmt, {k: v for p in params for k, v in p.items()})
        return
    for table, (name, count, keys), values in zip(tables, shape, params, strict=True):
        stmt = built(
            ("insert_pending", name, count, keys),
            lambda t=table, n=count, k=keys: _insert(t, n, k),  # type: ignore[misc]
        )
        await session.execute(stmt, values)


def _insert(table: Table, count: int, keys: tuple[str, ...]) -> Any:
    """An INSERT of ``count`` rows with bound parameters ``<table>_<row>_<column>``."""
    rows = [
        {k: bindparam(f"{table.name}_{i}_{k}", type_=table.c[k].type) for k in keys}
        for i in range(count)
    ]
    # one row: a statement SQLAlchemy caches compiled (a multi-row VALUES it compiles anew)
    return insert(table).values(rows[0] if count == 1 else rows)


def _one_statement(tables: list[Table], shape: tuple[tuple[str, int, tuple[str, ...]], ...]) -> Any:
    """Every row's INSERT in one statement: one single-row INSERT per row, all but the last
    as CTEs of the last (single-row, so that the statement's compiled form is cached)."""
    statements = [
        _insert_row(t, i, keys)
        for t, (_, count, keys) in zip(tables, shape, strict=True)
        for i in range(count)
    ]
    last = statements.pop()
    for i, statement in enumerate(statements):
        last = last.add_cte(statement.cte(f"insert_{i}"))
    return last


def _insert_row(table: Table, i: int, keys: tuple[str, ...]) -> Any:
    row = {k: bindparam(f"{table.name}_{i}_{k}", type_=table.c[k].type) for k in keys}
    return insert(table).values(row)
