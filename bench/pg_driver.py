"""Which PostgreSQL driver: psycopg 3 or asyncpg, on what the engine does (docs/architecture.md).

``python bench/pg_driver.py URL`` times, on each driver: (a) one guarded write as its own
transaction (BEGIN; UPDATE … WHERE version = $n; INSERT …; COMMIT), one after another, and
(b) loading 100,000 typed rows (text, numeric, timestamptz, jsonb) at open.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal

N_WRITES = 2000
N_ROWS = 100_000

SETUP = """
DROP TABLE IF EXISTS drv_rows; DROP TABLE IF EXISTS drv_docs;
CREATE TABLE drv_rows (k text PRIMARY KEY, amount numeric, at timestamptz, extra jsonb,
                       version int NOT NULL DEFAULT 0);
CREATE TABLE drv_docs (k text PRIMARY KEY, v int NOT NULL);
"""


async def psycopg_run(url: str) -> tuple[list[float], float]:
    import psycopg

    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    await conn.execute(SETUP)
    await conn.execute("INSERT INTO drv_docs VALUES ('c', 0)")
    lat = []
    for i in range(N_WRITES):
        t = time.perf_counter()
        async with conn.transaction():
            cur = await conn.execute("UPDATE drv_docs SET v = v + 1 WHERE k = 'c' AND v = %s", (i,))
            assert cur.rowcount == 1
            await conn.execute(
                "INSERT INTO drv_rows (k, amount, at, extra) VALUES (%s, %s, %s, %s)",
                (f"w{i}", Decimal("1.10"), datetime.now(UTC), psycopg.types.json.Jsonb({"i": i})),
            )
        lat.append(time.perf_counter() - t)
    await conn.execute("TRUNCATE drv_rows")
    async with conn.cursor() as cur:
        async with cur.copy("COPY drv_rows (k, amount, at, extra) FROM STDIN") as cp:
            now = datetime.now(UTC)
            for i in range(N_ROWS):
                await cp.write_row((f"r{i}", Decimal("12.30"), now, json.dumps({"i": i})))
    t = time.perf_counter()
    cur = conn.cursor()
    await cur.execute("SELECT k, amount, at, extra, version FROM drv_rows")
    rows = await cur.fetchall()
    load = time.perf_counter() - t
    assert len(rows) == N_ROWS
    await conn.close()
    return lat, load


async def asyncpg_run(url: str) -> tuple[list[float], float]:
    import asyncpg

    conn = await asyncpg.connect(url)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.execute(SETUP)
    await conn.execute("INSERT INTO drv_docs VALUES ('c', 0)")
    lat = []
    for i in range(N_WRITES):
        t = time.perf_counter()
        async with conn.transaction():
            status = await conn.execute("UPDATE drv_docs SET v = v + 1 WHERE k = 'c' AND v = $1", i)
            assert status == "UPDATE 1"
            await conn.execute(
                "INSERT INTO drv_rows (k, amount, at, extra) VALUES ($1, $2, $3, $4)",
                f"w{i}",
                Decimal("1.10"),
                datetime.now(UTC),
                {"i": i},
            )
        lat.append(time.perf_counter() - t)
    await conn.execute("TRUNCATE drv_rows")
    now = datetime.now(UTC)
    await conn.executemany(
        "INSERT INTO drv_rows (k, amount, at, extra) VALUES ($1, $2, $3, $4)",
        [(f"r{i}", Decimal("12.30"), now, {"i": i}) for i in range(N_ROWS)],
    )
    t = time.perf_counter()
    rows = await conn.fetch("SELECT k, amount, at, extra, version FROM drv_rows")
    load = time.perf_counter() - t
    assert len(rows) == N_ROWS
    await conn.execute("DROP TABLE drv_rows; DROP TABLE drv_docs")
    await conn.close()
    return lat, load


def show(name: str, lat: list[float], load: float) -> None:
    lat.sort()
    p50 = statistics.median(lat) * 1000
    p99 = lat[int(len(lat) * 0.99)] * 1000
    print(
        f"{name:8s} guarded write txn p50 {p50:.3f} ms p99 {p99:.3f} ms; "
        f"load {N_ROWS:,} rows {load:.2f} s",
        flush=True,
    )


async def main(url: str) -> None:
    for _ in range(2):
        show("psycopg", *(await psycopg_run(url)))
        show("asyncpg", *(await asyncpg_run(url)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
