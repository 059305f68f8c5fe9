"""Response hardening: headers on every response and the CSP of the documentation pages.

* ``X-Content-Type-Options: nosniff`` on every response.
* ``Cache-Control: no-store`` on every response except the static documentation assets:
  API answers may carry patient data and must not stay in browser or proxy caches.
* The documentation pages (``/docs``, ``/redoc``) are served from local assets under
  ``/static`` only, with a Content-Security-Policy that names their inline script by hash.
* The council's console (``/console``) has no inline script or style at all: its CSP allows
  this origin's files and requests only (``CONSOLE_CSP``).
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi.responses import HTMLResponse

NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_STORE = (b"cache-control", b"no-store")
STATIC_PREFIX = "/static/"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def extra_headers(path: str, existing: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The hardening headers a response to ``path`` gets (those it does not set itself)."""
    names = {bytes(k).lower() for k, _ in existing}
    add = [NOSNIFF] if NOSNIFF[0] not in names else []
    if STATIC_PREFIX not in path and NO_STORE[0] not in names:
        add.append(NO_STORE)
    return add


def inline_script_hashes(html: str) -> list[str]:
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    ]


def docs_csp(html: str) -> str:
    """Only this origin's assets; the page's own inline script by hash, never any other."""
    scripts = " ".join(["'self'", *inline_script_hashes(html)])
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {scripts}",
            # Swagger UI and ReDoc set element styles at run time
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "worker-src blob:",  # ReDoc's search runs in a worker built from a blob
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def with_docs_csp(page: HTMLResponse) -> HTMLResponse:
    html = bytes(page.body).decode()
    page.headers["content-security-policy"] = docs_csp(html)
    return page


#: the council's console (/console): its own scripts and styles only, no inline script or
#: style, no eval, requests to this origin only
CONSOLE_CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
