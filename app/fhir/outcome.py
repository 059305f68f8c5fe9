"""Errors under ``/fhir`` as ``OperationOutcome``: the problem document every error handler
and guard of the service writes is turned into one on its way out, with the same status.

One mapping for every error: the handlers (``app/api/errors.py``), the NUL guard, the body
limit and the rate limiter stay the only places that decide an error; this layer only
changes its shape. Like the problem documents it never echoes submitted values: each issue
names the element (``expression``) and the rule, never the value.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.fhir.common import FHIR_JSON, FIELD_ERROR, PROBLEM

#: HTTP status -> OperationOutcome issue code (http://hl7.org/fhir/issue-type)
ISSUE_CODE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    412: "conflict",
    413: "too-long",
    415: "not-supported",
    422: "invalid",
    428: "required",
    429: "throttled",
    503: "transient",
}


def expression_of(loc: list[Any]) -> str:
    """``["body", "ServiceRequest", "priority"]`` -> ``ServiceRequest.priority``; a parameter
    stays ``query.<name>`` / ``header.<name>``; the body as a whole is ``body``."""
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] == "body" and parts[1][:1].isupper():
        parts = parts[1:]
    out = parts[0] if parts else "body"
    for p in parts[1:]:
        out += f"[{p}]" if p.isdigit() else f".{p}"
    return out


def outcome_of(problem: dict[str, Any], status: int) -> dict[str, Any]:
    kind = str(problem.get("type") or "").rsplit("/", 1)[-1] or "error"
    code = ISSUE_CODE.get(status, "exception" if status >= 500 else "processing")
    detail = problem.get("detail") or problem.get("title") or "error"
    issues: list[dict[str, Any]] = []
    for err in problem.get("errors") or []:
        issue: dict[str, Any] = {
            "severity": "error",
            "code": "required" if err.get("type") == "missing" else code,
            "details": {
                "coding": [
                    {"system": PROBLEM, "code": kind},
                    {"system": FIELD_ERROR, "code": str(err.get("type") or "invalid")},
                ],
                "text": str(detail),
            },
            "diagnostics": str(err.get("msg") or "invalid"),
            "expression": [expression_of(list(err.get("loc") or []))],
        }
        issues.append(issue)
    if not issues:
        issues.append(
            {
                "severity": "error",
                "code": code,
                "details": {"coding": [{"system": PROBLEM, "code": kind}], "text": str(detail)},
                "diagnostics": str(detail),
            }
        )
    outcome: dict[str, Any] = {"resourceType": "OperationOutcome", "issue": issues}
    if problem.get("request_id"):
        outcome["id"] = str(problem["request_id"])[:64]
    return outcome


def is_fhir_path(scope: Scope) -> bool:
    path: str = scope.get("path", "")
    root = str(scope.get("root_path", "")).rstrip("/")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path == "/fhir" or path.startswith("/fhir/")


class OperationOutcomeMiddleware:
    """Rewrites ``application/problem+json`` answers under ``/fhir`` into ``OperationOutcome``
    (``application/fhir+json``), keeping the status and every other header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_fhir_path(scope):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_wrapper(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                if headers.get(b"content-type", b"").startswith(b"application/problem+json"):
                    start = message
                    return
                await send(message)
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            status = int(start["status"])
            try:
                problem = json.loads(b"".join(chunks))
            except ValueError:
                problem = {}
            body = json.dumps(
                outcome_of(problem if isinstance(problem, dict) else {}, status),
                ensure_ascii=False,
            ).encode()
            kept = [
                (k, v)
                for k, v in start.get("headers") or []
                if k.lower() not in (b"content-type", b"content-length")
            ]
            kept += [
                (b"content-type", FHIR_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ]
            await send({"type": "http.response.start", "status": status, "headers": kept})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, send_wrapper)
