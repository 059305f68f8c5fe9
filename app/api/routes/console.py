"""The council's console: one page served by the service itself (every asset under /static,
no inline script), signed in with a council, insurer or admin key that stays in the tab."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from app.api.security_headers import CONSOLE_CSP

router = APIRouter(tags=["console"])
PAGE = Path(__file__).resolve().parent.parent.parent / "static" / "console" / "index.html"


@lru_cache(maxsize=1)
def _page() -> str:
    return PAGE.read_text(encoding="utf-8")


@router.get("/console", include_in_schema=False)
async def console() -> HTMLResponse:
    # relative asset and API URLs: the page works under a gateway's path prefix as well
    return HTMLResponse(
        _page(),
        headers={
            "Content-Security-Policy": CONSOLE_CSP,
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
        },
    )
