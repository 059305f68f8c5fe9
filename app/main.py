"""Application factory."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from app import __version__
from app.api import errors
from app.api.input_guard import NulGuardMiddleware
from app.api.middleware import Metrics, RequestContextMiddleware, RootPathMiddleware
from app.api.ratelimit import RateLimitMiddleware
from app.api.routes import appointments as appointment_routes
from app.api.routes import (
    capacity,
    down,
    fhir_meta,
    fhir_observations,
    fhir_referrals,
    fhir_registry,
    fhir_tasks,
    lifecycle,
    ops,
    pathways,
    referrals,
    registry,
    reports,
    tiers,
)
from app.api.routes import console as console_routes
from app.api.routes import documents as document_routes
from app.api.routes import filings as filing_routes
from app.api.routes import memberships as membership_routes
from app.api.routes import notices as notice_routes
from app.api.routes import remote as remote_routes
from app.api.routes import satisfaction as satisfaction_routes
from app.api.routes import signings as signing_routes
from app.api.routes import webhooks as webhook_routes
from app.api.routes import worklist as worklist_routes
from app.config import Settings, get_settings
from app.db.session import Database, Timeouts
from app.fhir.outcome import OperationOutcomeMiddleware
from app.logging_setup import JSON_LOGS_ENV, configure_logging, pin_library_loggers
from app.services import (
    appraisal,
    candidates,
    diagnoses,
    relay,
    remote_levels,
    routing_policy,
    slot_reservation,
)
from app.services.auth import PrincipalCache
from app.services.crypto import PatientDataProtector
from app.services.documents import DatabaseDocumentStore
from app.services.egress import system_resolve
from app.services.sweeper import run_forever

STATIC_DIR = Path(__file__).resolve().parent / "static"

DESCRIPTION = """
Two-way referral routing for medical consortia (医联体 / 医共体).

* Authenticate with an API key: `Authorization: Bearer <key>` or `X-API-Key: <key>`
  (Swagger UI: **Authorize**). Demo keys are in `demo-keys.json` when started in demo mode.
* Errors are RFC 9457 `application/problem+json` documents with a stable `type`.
* Lists use keyset paging: pass `next_cursor` back as `cursor`.
* Every response carries `X-Request-ID` (sent back as given, or generated).
"""


def operation_id(route: APIRoute) -> str:
    """Stable operation ids: the endpoint function's name."""
    return route.name


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.require_secrets()
    diagnoses.load_catalogues(settings)  # a catalogue that cannot be used stops the start
    routing_policy.configure(settings.routing_policy_file)  # a broken file stops the start
    candidates.configure(settings)  # the census windows the create's pre-filter classifies with
    appraisal.targets_of(settings)  # a broken targets file stops the start
    slot_reservation.policy_of(settings)  # a broken slot reservation file stops the start
    remote_levels.check(settings)  # so does a service-level file without remote minutes
    if os.environ.get(JSON_LOGS_ENV):  # set by `referral-service serve` for its workers
        configure_logging(settings.log_level)
    pin_library_loggers()  # embedded or served: no SQL parameters or webhook URLs in logs

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.shutting_down = False
        sweeper = None
        if settings.sweep_interval_seconds > 0:
            sweeper = asyncio.create_task(
                run_forever(app.state.database, settings), name="expiry-sweeper"
            )
        webhook_relay = None
        if settings.webhook_relay_interval_seconds > 0:
            webhook_relay = asyncio.create_task(
                relay.run_forever(app.state.database, settings, app.state.webhook_resolver),
                name="webhook-relay",
            )
        yield
        app.state.shutting_down = True
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        if webhook_relay is not None:
            webhook_relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await webhook_relay
        await app.state.database.dispose()

    app = FastAPI(
        title="Referral routing service",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.database = Database(
        settings.database_url,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        pool_size=settings.db_pool_size,
        timeouts=Timeouts(
            connect_s=settings.db_connect_timeout_seconds,
            command_s=settings.db_command_timeout_seconds,
            statement_ms=settings.db_statement_timeout_ms,
            lock_ms=settings.db_lock_timeout_ms,
        ),
    )
    app.state.metrics = Metrics()
    app.state.principal_cache = PrincipalCache()
    app.state.document_store = DatabaseDocumentStore()
    app.state.protector = PatientDataProtector(
        settings.secret("patient_data_key"), settings.secret("patient_hmac_key")
    )
    app.state.shutting_down = False
    # how webhook hosts are resolved (subscribe and connect time); tests may swap it
    app.state.webhook_resolver = system_resolve

    errors.install(app)
    app.include_router(ops.router)
    app.include_router(registry.router)
    app.include_router(membership_routes.router)
    app.include_router(capacity.router)
    app.include_router(referrals.router)
    app.include_router(lifecycle.router)
    app.include_router(worklist_routes.router)
    app.include_router(satisfaction_routes.router)
    app.include_router(document_routes.router)
    app.include_router(notice_routes.router)
    app.include_router(pathways.router)
    app.include_router(webhook_routes.router)
    app.include_router(filing_routes.router)
    app.include_router(down.router)
    app.include_router(remote_routes.router)
    app.include_router(signing_routes.router)
    app.include_router(appointment_routes.router)
    app.include_router(tiers.router)
    app.include_router(reports.router)
    app.include_router(console_routes.router)
    app.include_router(fhir_meta.router)  # the FHIR R4 face of the same use cases
    app.include_router(fhir_registry.router)
    app.include_router(fhir_referrals.router)
    app.include_router(fhir_tasks.router)
    app.include_router(fhir_observations.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(NulGuardMiddleware)  # innermost: request id and metrics apply
    app.add_middleware(RateLimitMiddleware, settings=settings)  # inside the request context
    app.add_middleware(
        RequestContextMiddleware,
        metrics=app.state.metrics,
        max_body_bytes=settings.max_body_bytes,
        document_max_bytes=settings.document_max_bytes,
    )
    app.add_middleware(OperationOutcomeMiddleware)  # /fhir errors, whoever wrote them
    if settings.root_path:  # outermost: every layer sees the path with its prefix
        app.add_middleware(RootPathMiddleware, root_path=settings.root_path)

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            servers=[{"url": settings.root_path}] if settings.root_path else None,
        )
        app.openapi_schema = schema
        return schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
    return app
