"""CSV bodies for spreadsheet users: UTF-8 with BOM, cells that cannot run as formulas.

A spreadsheet treats a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return as a formula (CSV injection, OWASP); such text cells are written with a leading ``'``,
which the spreadsheet shows as text. Numbers are written as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import Request, Response
from pydantic import BaseModel

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def to_csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: safe_cell(v) for k, v in row.items()})
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def wants_csv(request: Request) -> bool:
    """The caller asked for a spreadsheet (``Accept: text/csv``)."""
    return "text/csv" in request.headers.get("accept", "")


def csv_response(body: bytes, filename: str | None = None) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'} if filename else None
    return Response(body, media_type="text/csv; charset=utf-8", headers=headers)


def json_list(rows: Iterable[BaseModel]) -> Response:
    """A JSON array of response models, each serialised once."""
    return Response(
        "[" + ",".join(r.model_dump_json() for r in rows) + "]", media_type="application/json"
    )
