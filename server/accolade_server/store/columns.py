"""Set-based statements of the write path, each derived from one column spec.

A `Write` names a table, its columns (how to get each value from a row) and what to do on a
key clash; a `Read` names a table, the key columns to look up and the columns to return. On
PostgreSQL a spec becomes one `unnest` statement (or one part of a statement) that takes whole
columns as array parameters, numbered as they are added; on SQLite the same spec becomes a
SQLAlchemy Core statement run with one parameter set per row. Nothing is numbered by hand.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from accolade_server.store.db import number_array, text_array

#: The statement's own `now` (a column with no getter takes it).
NOW = None


@dataclass(frozen=True, slots=True)
class Col:
    name: str
    #: PostgreSQL element type: varchar, text, float8, int4, int8, boolean, timestamptz, jsonb.
    type: str
    #: The value of a row; NOW: the statement's time.
    get: Callable[[Any], Any] | None = NOW
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class Write:
    table: sa.Table
    cols: tuple[Col, ...]
    #: insert; delete the rows whose `key` matches; add the other columns to matching rows.
    op: Literal["insert", "delete", "add"] = "insert"
    #: The key: conflict target of an insert, match columns of a delete or an add.
    key: tuple[str, ...] = ()
    #: On a key clash: fail, ignore the row, update the row's other columns, or lock the row
    #: (PostgreSQL: a no-op update, which waits for and locks the row like SELECT … FOR
    #: UPDATE, also a row another transaction is inserting; SQLite: ignore, since `BEGIN
    #: IMMEDIATE` serializes whole transactions).
    on_conflict: Literal["fail", "ignore", "update", "lock"] = "fail"
    #: Count the rows actually written (returned by `run`).
    count: bool = False


@dataclass(frozen=True, slots=True)
class Read:
    table: sa.Table
    key: tuple[Col, ...]  # looked up by these columns (keys come as tuples, in this order)
    cols: tuple[Col, ...]  # returned, in this order
    order_by: str = ""


def dump_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), check_circular=False)


def _bools(values: Sequence[bool]) -> str:
    return "{" + ",".join(["t" if v else "f" for v in values]) + "}"


class PgParams:
    """Positional parameters of one PostgreSQL statement, numbered as they are added."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._now: str | None = None

    def add(self, value: Any, cast: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}{cast}"

    def now(self, now: datetime) -> str:
        if self._now is None:
            self._now = self.add(now, "::timestamptz")
        return self._now

    def column(self, col: Col, values: list[Any]) -> str:
        """One column as an array parameter (most as one text literal, see `text_array`)."""
        if col.type == "jsonb":
            return self.add([None if v is None else dump_json(v) for v in values], "::text[]")
        if col.type == "timestamptz":
            return self.add(values, "::timestamptz[]")
        if col.type == "boolean":
            return self.add(_bools(values), "::text::boolean[]")
        if col.type in ("float8", "int4", "int8"):
            return self.add(number_array(values), f"::text::{col.type}[]")
        if col.nullable:
            return self.add(values, f"::{col.type}[]")
        return self.add(text_array(values), f"::text::{col.type}[]")


def pg_write(spec: Write, rows: Sequence[Any], params: PgParams, now: datetime) -> str:
    """The spec as one PostgreSQL statement over `rows` (usable as a CTE part)."""
    t = spec.table.name
    arrays = [c for c in spec.cols if c.get is not None]
    unnest = ", ".join(
        params.column(c, [c.get(r) for r in rows])  # type: ignore[misc]
        for c in arrays
    )
    source = f"unnest({unnest}) AS x({', '.join(c.name for c in arrays)})"

    def value(c: Col) -> str:
        if c.get is None:
            return params.now(now)
        return f"x.{c.name}::jsonb" if c.type == "jsonb" else f"x.{c.name}"

    if spec.op == "delete":
        match = " AND ".join(f"{t}.{k} = x.{k}" for k in spec.key)
        return f"DELETE FROM {t} USING {source} WHERE {match}"
    if spec.op == "add":
        match = " AND ".join(f"{t}.{k} = x.{k}" for k in spec.key)
        sets = ", ".join(
            f"{c.name} = {params.now(now)}"
            if c.get is None
            else f"{c.name} = {t}.{c.name} + x.{c.name}"
            for c in spec.cols
            if c.name not in spec.key
        )
        return f"UPDATE {t} SET {sets} FROM {source} WHERE {match}"
    names = ", ".join(c.name for c in spec.cols)
    sql = f"INSERT INTO {t} ({names}) SELECT {', '.join(value(c) for c in spec.cols)} FROM {source}"
    target = f" ({', '.join(spec.key)})" if spec.key else ""
    if spec.on_conflict == "ignore":
        sql += f" ON CONFLICT{target} DO NOTHING"
    elif spec.on_conflict == "lock":
        sql += f" ON CONFLICT{target} DO UPDATE SET {spec.key[0]} = excluded.{spec.key[0]}"
    elif spec.on_conflict == "update":
        sets = ", ".join(
            f"{c.name} = excluded.{c.name}" for c in spec.cols if c.name not in spec.key
        )
        sql += f" ON CONFLICT{target} DO UPDATE SET {sets}"
    if spec.count:
        sql += " RETURNING 1"
    return sql


def pg_read(
    reads: Sequence[tuple[Read, Sequence[tuple[Any, ...]]]], params: PgParams
) -> tuple[str, list[int]]:
    """One UNION ALL statement for several lookups by key (each an index lookup per key): a
    row is (which read, then the columns of every read, only that read's filled in). Returns
    the SQL and where each read's columns start in a row."""
    offsets, width = [], 1
    for spec, _ in reads:
        offsets.append(width)
        width += len(spec.cols)
    slots = [
        (spec, f"c{offset + j}", c)
        for (spec, _), offset in zip(reads, offsets, strict=True)
        for j, c in enumerate(spec.cols)
    ]
    parts = []
    for kind, (spec, keys) in enumerate(reads):
        t = spec.table.name
        unnest = ", ".join(
            params.column(k, [key[i] for key in keys]) for i, k in enumerate(spec.key)
        )
        select = [str(kind)] + [
            f"{t}.{c.name}" if owner is spec else f"NULL::{c.type}" for owner, _, c in slots
        ]
        if kind == 0:  # the first SELECT names the columns of the union
            select = [
                f"{v} AS {name}"
                for v, name in zip(select, ["c0"] + [n for _, n, _ in slots], strict=True)
            ]
        keys_as = ", ".join(f"k{i}" for i in range(len(spec.key)))
        on = " AND ".join(f"{t}.{k.name} = x.k{i}" for i, k in enumerate(spec.key))
        # A LATERAL subquery with OFFSET 0 is not pulled up into a join, so each key is a
        # lookup on the table's primary key (or its prefix) whatever the planner estimates:
        # it cannot pick a hash join over a full scan of a large table.
        cols = ", ".join(c.name for c in spec.cols)
        parts.append(
            f"SELECT {', '.join(select)} FROM unnest({unnest}) AS x({keys_as})"
            f" CROSS JOIN LATERAL (SELECT {cols} FROM {t} WHERE {on} OFFSET 0) AS {t}"
        )
    order = "".join(
        f", {name}" for owner, name, c in slots if owner.order_by and c.name == owner.order_by
    )
    return "\nUNION ALL\n".join(parts) + f"\nORDER BY c0{order}", offsets


async def sqlite_write(conn: Any, spec: Write, rows: Sequence[Any], now: datetime) -> int:
    """The spec as SQLAlchemy Core statements on SQLite, one parameter set per row."""
    table = spec.table

    def value(c: Col, row: Any) -> Any:
        if c.get is None:
            return now
        v = c.get(row)
        return sa.null() if v is None and c.type == "jsonb" else v

    if spec.op == "delete":
        stmt: Any = sa.delete(table).where(
            *(table.c[k] == sa.bindparam(f"k_{k}") for k in spec.key)
        )
        await conn.execute(stmt, [{f"k_{c.name}": value(c, r) for c in spec.cols} for r in rows])
        return len(rows)
    if spec.op == "add":
        values = {
            c.name: (
                sa.bindparam("v_now")
                if c.get is None
                else table.c[c.name] + sa.bindparam(f"v_{c.name}")
            )
            for c in spec.cols
            if c.name not in spec.key
        }
        stmt = (
            sa.update(table)
            .where(*(table.c[k] == sa.bindparam(f"k_{k}") for k in spec.key))
            .values(values)
        )
        await conn.execute(
            stmt,
            [
                {
                    (
                        f"k_{c.name}" if c.name in spec.key else f"v_{c.name}" if c.get else "v_now"
                    ): value(c, r)
                    for c in spec.cols
                }
                for r in rows
            ],
        )
        return len(rows)
    stmt = sqlite.insert(table)
    if spec.on_conflict in ("ignore", "lock"):
        stmt = stmt.on_conflict_do_nothing(index_elements=list(spec.key) or None)
    elif spec.on_conflict == "update":
        stmt = stmt.on_conflict_do_update(
            index_elements=list(spec.key),
            set_={c.name: stmt.excluded[c.name] for c in spec.cols if c.name not in spec.key},
        )
    params = [{c.name: value(c, r) for c in spec.cols} for r in rows]
    if spec.count:
        result = await conn.execute(stmt.returning(table.c[spec.key[0]]), params)
        return len(result.all())
    await conn.execute(stmt, params)
    return len(rows)


async def sqlite_read(conn: Any, spec: Read, keys: Sequence[tuple[Any, ...]]) -> list[Any]:
    table = spec.table
    cols = [table.c[c.name] for c in spec.cols]
    if len(spec.key) == 1:
        where = table.c[spec.key[0].name].in_([k[0] for k in keys])
    else:
        where = sa.tuple_(*(table.c[k.name] for k in spec.key)).in_(list(keys))
    query = sa.select(*cols).where(where)
    if spec.order_by:
        query = query.order_by(table.c[spec.order_by])
    return list(await conn.execute(query))
