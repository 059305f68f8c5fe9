"""A catalogue of one edition's diagnosis codes: CSV text of ``code,name`` rows.

One row a line (no line breaks inside a field); lines starting with ``#`` and blank lines
are comments; a first row ``code,name`` is a header;
further columns are ignored. Every code must have the edition's structure, once; every name
must be given. Codes are matched exactly (no case folding).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass

from app.domain.icd10 import CodeSystem, InvalidIcd10Code, parse_code

__all__ = ["Catalogue", "CatalogueError", "parse_catalogue"]

MAX_NAME = 200


class CatalogueError(ValueError):
    """The catalogue text cannot be used; the message names the line."""


@dataclass(frozen=True, slots=True)
class Catalogue:
    system: CodeSystem
    names: Mapping[str, str]

    def name_of(self, code: str) -> str | None:
        return self.names.get(code)

    def __len__(self) -> int:
        return len(self.names)


def parse_catalogue(text: str, system: CodeSystem) -> Catalogue:
    names: dict[str, str] = {}
    text = text.removeprefix("\ufeff")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [cell.strip() for cell in next(csv.reader([line]))]
        if not names and [c.lower() for c in cells[:2]] == ["code", "name"]:
            continue
        if len(cells) < 2 or not cells[1]:
            raise CatalogueError(f"line {number}: expected code,name")
        code, name = cells[0], cells[1]
        try:
            parse_code(code, system)
        except InvalidIcd10Code as exc:
            raise CatalogueError(
                f"line {number}: not a code of the {system.value} structure ({exc.reason})"
            ) from exc
        if code in names:
            raise CatalogueError(f"line {number}: code listed twice")
        if len(name) > MAX_NAME:
            raise CatalogueError(f"line {number}: name longer than {MAX_NAME} characters")
        names[code] = name
    if not names:
        raise CatalogueError("no codes")
    return Catalogue(system, names)
