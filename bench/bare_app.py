"""Baseline for the create benchmark: the service's stack with one INSERT and nothing else.

FastAPI + uvicorn (same loop and HTTP implementation as the service: uvicorn's "auto", i.e.
uvloop and httptools when installed) + SQLAlchemy async + asyncpg, with the same pool settings
as ``app.db.session`` (pool_size 10, max_overflow 10, pre-ping) and the same "one transaction
per request, committed by the dependency before the response" pattern.

``POST /bare`` takes any JSON object, stores it as text in ``bench_bare`` (one INSERT) and
answers 201 with a small JSON body. ``GET /readyz`` answers 200 when the database does.

Run (``bench/create_bench.py`` does this for you)::

    BENCH_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/DB \\
        .venv/bin/python bench/bare_app.py --port 8001 --workers 2

The table must exist: ``CREATE TABLE bench_bare (id text PRIMARY KEY, payload text NOT NULL,
created_at timestamptz NOT NULL)`` (``create_bench.py`` creates it).
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

INSERT = text("INSERT INTO bench_bare (id, payload, created_at) VALUES (:id, :payload, :at)")


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response (as in app.api.deps)."""
    maker: async_sessionmaker[AsyncSession] = request.app.state.maker
    async with maker() as session, session.begin():
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def create_app() -> FastAPI:
    url = os.environ["BENCH_DATABASE_URL"]
    pool_size = int(os.environ.get("BENCH_DB_POOL_SIZE", "10"))
    engine = create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800
    )
    maker = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.maker = maker

    @app.post("/bare", status_code=201)
    async def bare(body: Annotated[dict[str, Any], Body()], session: SessionDep) -> JSONResponse:
        row_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        await session.execute(INSERT, {"id": row_id, "payload": payload, "at": now})
        return JSONResponse({"id": row_id, "created_at": now.isoformat()}, status_code=201)

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return {"status": "ready"}

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    uvicorn.run(
        "bare_app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=True,
        timeout_graceful_shutdown=20,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
