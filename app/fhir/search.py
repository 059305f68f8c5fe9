"""Search answers: ``searchset`` Bundles with ``self`` and ``next`` links, and the paging
token (``_cursor``) that carries the ``/v1`` keyset cursor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.exceptions import RequestValidationError

from app.fhir.common import base_url

COUNT_DEFAULT = 50


def bad_parameter(
    name: str, msg: str, kind: str = "value_error", *, where: str = "query"
) -> RequestValidationError:
    """422 naming the parameter (its value is not echoed)."""
    return RequestValidationError([{"loc": (where, name), "msg": msg, "type": kind}])


def searchset(
    request: Request,
    resources: Sequence[dict[str, Any]],
    next_cursor: str | None,
) -> dict[str, Any]:
    base = base_url(request)
    here = f"{base}{request.url.path[request.url.path.index('/fhir') + 5 :]}"
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "_cursor"]
    links = [{"relation": "self", "url": f"{here}?{urlencode(request.query_params.multi_items())}"}]
    if next_cursor is not None:
        links.append(
            {"relation": "next", "url": f"{here}?{urlencode([*params, ('_cursor', next_cursor)])}"}
        )
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }
