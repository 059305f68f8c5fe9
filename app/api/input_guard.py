"""NUL characters are refused at the edge: PostgreSQL cannot store them in text, and no
field of this API has a use for them.

Path, query and header parameters are checked here, before routing; body strings are checked by the
request models (`StrictModel`). The answer is a 422 problem naming the parameter, never its
value.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

NUL_MESSAGE = "must not contain NUL characters"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _nul_location(scope: Scope) -> list[str] | None:
    if "\x00" in scope.get("path", "") or b"%00" in scope.get("raw_path", b"").lower():
        return ["path"]
    for key, value in scope.get("headers", []):
        if b"\x00" in value:
            name = bytes(key).decode("latin-1")
            return ["header", name] if _NAME.fullmatch(name) else ["header"]
    query = bytes(scope.get("query_string", b""))
    if b"%00" not in query.lower() and b"\x00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in value or "\x00" in name:
            return ["query", name] if _NAME.fullmatch(name) else ["query"]
    if b"\x00" in unquote_to_bytes(query):
        return ["query"]
    return None


class NulGuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loc = _nul_location(scope) if scope["type"] == "http" else None
        if loc is None:
            await self.app(scope, receive, send)
            return
        body = {
            "type": "https://referral.example.org/problems/validation-error",
            "title": "Invalid request",
            "status": 422,
            "detail": "The request has invalid or missing fields.",
            "instance": None,
            "request_id": scope.get("state", {}).get("request_id"),
            "errors": [{"loc": loc, "msg": NUL_MESSAGE, "type": "string_nul"}],
        }
        data = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 422,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})
