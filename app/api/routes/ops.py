"""Health, readiness, metrics and the offline API documentation pages."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.errors import problem_response, problem_responses
from app.api.security_headers import with_docs_csp

router = APIRouter(tags=["operations"])


@router.get("/livez", summary="Liveness: the process is up")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


READY_TIMEOUT_S = 2.0


@router.get(
    "/readyz",
    summary="Readiness: the database answers and the service is not shutting down",
    responses=problem_responses(503),
)
async def readyz(request: Request) -> Response:
    state = request.app.state
    if state.shutting_down:
        return problem_response(request, 503, "The service is shutting down.")
    try:
        # bounded: a stalled database fails readiness in 2 s instead of hanging the probe
        problem = await asyncio.wait_for(state.database.ready(), READY_TIMEOUT_S)
    except Exception:
        return problem_response(
            request,
            503,
            "The database is unreachable or not writable.",
            headers={"Retry-After": "1"},
        )
    if problem is not None:
        return problem_response(request, 503, f"Not ready: {problem}.")
    return JSONResponse({"status": "ok"})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    data = generate_latest(request.app.state.metrics.registry)
    return Response(content=data, media_type=CONTENT_TYPE_LATEST)


def _prefix(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get("/docs", include_in_schema=False)
async def swagger_ui(request: Request) -> HTMLResponse:
    root = _prefix(request)
    page = get_swagger_ui_html(
        openapi_url=f"{root}/openapi.json",
        title="Referral service — Swagger UI",
        swagger_js_url=f"{root}/static/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/static/swagger-ui.css",
        swagger_favicon_url=f"{root}/static/favicon-32x32.png",
        # no persistAuthorization: keys would stay in localStorage on shared ward PCs
        swagger_ui_parameters={"validatorUrl": None},
    )
    return with_docs_csp(page)


@router.get("/redoc", include_in_schema=False)
async def redoc(request: Request) -> HTMLResponse:
    root = _prefix(request)
    page = get_redoc_html(
        openapi_url=f"{root}/openapi.json",
        title="Referral service — ReDoc",
        redoc_js_url=f"{root}/static/redoc.standalone.js",
        redoc_favicon_url=f"{root}/static/favicon-32x32.png",
        with_google_fonts=False,
    )
    return with_docs_csp(page)
