"""Command line: ``referral-service serve | migrate | load-consortium | create-api-key |
export-openapi``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from app.config import ConfigurationError, Settings, get_settings
from app.db import migrate as migrations
from app.db.session import Database
from app.domain.enums import Role
from app.domain.errors import DomainError


def _settings() -> Settings:
    get_settings.cache_clear()
    return get_settings()


async def _with_session(settings: Settings, work: Any) -> Any:
    database = Database(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    try:
        async with database.unit_of_work() as session:
            return await work(session)
    finally:
        await database.dispose()


def cmd_migrate(args: argparse.Namespace) -> int:
    from app.services import loader

    settings = _settings()
    migrations.upgrade(settings.database_url, args.revision)
    count = asyncio.run(_with_session(settings, loader.load_reference_data))
    print(f"database at revision {args.revision}; reference data: {count} rows added or changed")
    return 0


def _prepare_demo(settings: Settings) -> None:
    from app.services import demo

    migrations.upgrade(settings.database_url)

    async def work(session: Any) -> list[demo.DemoKey]:
        return await demo.load_demo(
            session,
            pepper=settings.secret("api_key_pepper"),
            seed=settings.secret("api_key_pepper"),
        )

    keys = asyncio.run(_with_session(settings, work))
    demo.write_keys(settings.demo_keys_file, keys)
    print(
        "Demo consortia loaded. Demo API keys (all of them in "
        f"{settings.demo_keys_file.resolve()}):"
    )
    print(demo.summary(keys))


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    if args.demo:
        os.environ["REFERRAL_DEMO_MODE"] = "true"
    for name in ("host", "port", "workers"):
        value = getattr(args, name)
        if value is not None:
            os.environ[f"REFERRAL_{name.upper()}"] = str(value)
    settings = _settings()
    settings.require_secrets()
    settings.require_safe_listen()
    if not settings.demo_mode:  # demo mode migrates first, below
        problem = _schema_problem(settings)
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    from app.services.diagnoses import load_catalogues

    load_catalogues(settings)  # before the workers start: a broken file stops here
    if settings.demo_mode:
        _prepare_demo(settings)
    from app.logging_setup import JSON_LOGS_ENV, configure_logging

    configure_logging(settings.log_level)
    os.environ[JSON_LOGS_ENV] = "1"  # worker processes configure the same JSON logging
    print(
        f"Serving on http://{settings.host}:{settings.port}{settings.root_path} "
        f"(Swagger UI at {settings.root_path}/docs)",
        flush=True,
    )
    uvicorn.run(
        "app.cli:create_served_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=20,
        log_config=None,
        access_log=False,
    )
    return 0


def create_served_app() -> Any:
    """The app factory ``serve`` gives uvicorn (called in every worker process).

    It is ``app.main.create_app`` plus the drain step on SIGTERM (below).
    """
    from app.main import create_app

    settings = get_settings()
    app = create_app(settings)
    install_drain(app, settings.shutdown_drain_seconds)
    return app


def install_drain(app: Any, seconds: float) -> bool:
    """On SIGTERM, fail readiness first and keep serving ``seconds`` before uvicorn stops.

    uvicorn's own graceful shutdown closes the listening socket at once and only then runs the
    lifespan shutdown, so a load balancer polling ``/readyz`` never sees 503 before connections
    are refused. With a drain time, the first SIGTERM sets ``app.state.shutting_down`` (so
    ``/readyz`` answers 503) and hands the signal to uvicorn's handler ``seconds`` later; then
    uvicorn stops accepting, finishes in-flight requests (up to 20 s) and shuts down. A second
    SIGTERM during the drain goes to uvicorn at once.

    uvicorn calls the app factory inside its event loop after installing its signal handlers;
    the drain wraps that handler. Returns whether it was installed (not without a drain time,
    outside the main thread, or when no uvicorn handler is in place).
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        return False
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):
        return False
    uvicorn_handler: Callable[[int, FrameType | None], Any] = previous
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not called by a serving uvicorn
        return False
    draining = False

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        nonlocal draining
        if draining:
            uvicorn_handler(sig, frame)
            return
        draining = True
        app.state.shutting_down = True
        loop.call_soon_threadsafe(
            logging.getLogger("app.shutdown").info,
            "SIGTERM: readiness fails now; serving %.1f s more before shutting down",
            seconds,
        )
        loop.call_soon_threadsafe(loop.call_later, seconds, uvicorn_handler, sig, None)

    signal.signal(signal.SIGTERM, on_sigterm)
    return True


def _schema_problem(settings: Any) -> str | None:
    """Why ``serve`` must not start on this database (None: it may)."""
    from app.db.session import Database

    async def check() -> str | None:
        database = Database(settings.database_url)
        try:
            return await database.ready()
        except Exception as exc:  # unreachable or missing: say so in one line
            name = type(exc).__name__
            return f"cannot open the database ({name}); run `referral-service migrate` first"
        finally:
            await database.dispose()

    return asyncio.run(check())


def cmd_load_consortium(args: argparse.Namespace) -> int:
    from app.services import loader

    settings = _settings()
    parsed = loader.parse_file(Path(args.file))

    async def work(session: Any) -> loader.LoadResult:
        await loader.load_specialties(session)
        return await loader.load_consortium(
            session, parsed, default_time_zone=settings.default_time_zone
        )

    result = asyncio.run(_with_session(settings, work))
    print(
        f"consortium {result.consortium_code} ({result.consortium_id}): "
        f"{result.institutions} members, {result.partners} upstream partners"
    )
    return 0


def cmd_create_api_key(args: argparse.Namespace) -> int:
    from app.db.repositories import registry as repo
    from app.services import auth

    settings = _settings()
    settings.require_secrets()

    async def work(session: Any) -> auth.IssuedKey:
        institution_id = consortium_id = None
        if args.institution:
            inst = await repo.get_institution_by_code(session, args.institution)
            if inst is None:
                raise DomainError(f"no institution with code {args.institution}")
            institution_id, consortium_id = inst.id, inst.consortium_id
        if args.consortium:
            cons = await repo.get_consortium_by_code(session, args.consortium)
            if cons is None:
                raise DomainError(f"no consortium with code {args.consortium}")
            consortium_id = cons.id
        role = Role(args.role)
        if role in (Role.CLINIC, Role.HOSPITAL) and institution_id is None:
            raise DomainError(f"a {role.value} key needs --institution")
        if role in (Role.COUNCIL, Role.NOTIFIER) and consortium_id is None:
            raise DomainError(f"a {role.value} key needs --consortium (or --institution)")
        return await auth.issue_key(
            session,
            pepper=settings.secret("api_key_pepper"),
            name=args.name,
            role=role,
            institution_id=institution_id,
            consortium_id=consortium_id,
        )

    issued = asyncio.run(_with_session(settings, work))
    print(
        json.dumps(
            {"id": issued.key_id, "key": issued.key, "note": "Shown once; only a hash is stored."}
        )
    )
    return 0


def cmd_housekeeping(args: argparse.Namespace) -> int:
    from app.services.housekeeping import housekeeping_once

    settings = _settings()
    settings.require_secrets()

    async def run() -> str:
        database = Database(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        try:
            return (await housekeeping_once(database, settings)).summary()
        finally:
            await database.dispose()

    print(f"deleted: {asyncio.run(run())}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from app.services.sweeper import sweep_once

    settings = _settings()
    settings.require_secrets()

    async def run() -> int:
        database = Database(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        try:
            return await sweep_once(database, settings)
        finally:
            await database.dispose()

    print(f"expired and re-routed {asyncio.run(run())} referrals")
    return 0


def cmd_export_openapi(args: argparse.Namespace) -> int:
    from app.main import create_app
    from app.openapi_export import render

    os.environ.setdefault("REFERRAL_DEMO_MODE", "true")
    text = render(create_app(_settings()))
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="referral-service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service (uvicorn)")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="demo mode: migrate, load demo consortia, write demo keys",
    )
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(func=cmd_serve)

    mig = sub.add_parser("migrate", help="apply database migrations and reference data")
    mig.add_argument("revision", nargs="?", default="head")
    mig.set_defaults(func=cmd_migrate)

    load = sub.add_parser("load-consortium", help="load or update a consortium file (YAML/JSON)")
    load.add_argument("file")
    load.set_defaults(func=cmd_load_consortium)

    key = sub.add_parser("create-api-key", help="create an API key (printed once)")
    key.add_argument("--role", required=True, choices=[r.value for r in Role])
    key.add_argument("--name", required=True)
    key.add_argument("--institution", help="institution code (clinic, hospital, council)")
    key.add_argument("--consortium", help="consortium code (council)")
    key.set_defaults(func=cmd_create_api_key)

    sweep = sub.add_parser("sweep", help="expire overdue pending referrals and re-route them")
    sweep.set_defaults(func=cmd_sweep)
    housekeeping = sub.add_parser(
        "housekeeping",
        help="delete expired idempotency records, old delivered webhooks and day counters",
    )
    housekeeping.set_defaults(func=cmd_housekeeping)

    exp = sub.add_parser("export-openapi", help="write the OpenAPI document")
    exp.add_argument("--output", default="openapi/openapi.json")
    exp.set_defaults(func=cmd_export_openapi)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DomainError as exc:
        detail = exc.detail
        errors = getattr(exc, "errors", None)
        print(f"error: {detail}", file=sys.stderr)
        for err in errors or []:
            print(f"  {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
