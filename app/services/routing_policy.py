"""The consortium's routing policy (data, not code) and the specialty names routing explains with.

``app/data/routing_policy.json`` (an example, marked so) or the file named by
``REFERRAL_ROUTING_POLICY_FILE``: whether an institution offering only a parent subject (``03``)
counts for a sub-specialty request (``03.04``), per care type, by default and per consortium code.
Read once per process and path; a broken file stops the start with the field it could not read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from app.domain.enums import CareType

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
POLICY_FILE = DATA_DIR / "routing_policy.json"
SPECIALTIES_FILE = DATA_DIR / "specialties.json"


class RoutingPolicyError(ValueError):
    """The routing policy file cannot be used; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    version: int
    is_example: bool
    default: dict[CareType, bool]
    consortia: dict[str, dict[CareType, bool]]

    def parent_only_eligible(self, consortium_code: str | None, care_type: CareType) -> bool:
        table = self.consortia.get(consortium_code or "", self.default)
        return table.get(care_type, self.default.get(care_type, True))


def _table(raw: Any, where: str, path: Path) -> dict[CareType, bool]:
    if not isinstance(raw, dict):
        raise RoutingPolicyError(f"{path}: {where} must be an object of care type to true/false")
    out: dict[CareType, bool] = {}
    for key, value in raw.items():
        try:
            care = CareType(key)
        except ValueError:
            raise RoutingPolicyError(f"{path}: {where} has an unknown care type") from None
        if not isinstance(value, bool):
            raise RoutingPolicyError(f"{path}: {where}.{key} must be true or false")
        out[care] = value
    return out


@cache
def load(path: Path | None = None) -> RoutingPolicy:
    path = path or POLICY_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
        matches = doc["parent_only_matches"]
        version = doc["version"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RoutingPolicyError(
            f"{path}: cannot read the routing policy ({type(exc).__name__})"
        ) from None
    if not isinstance(version, int) or isinstance(version, bool):
        raise RoutingPolicyError(f"{path}: version must be an integer")
    consortia = matches.get("consortia", {})
    if not isinstance(consortia, dict):
        raise RoutingPolicyError(f"{path}: parent_only_matches.consortia must be an object")
    return RoutingPolicy(
        version=version,
        is_example=bool(doc.get("is_example", False)),
        default=_table(matches.get("default", {}), "parent_only_matches.default", path),
        consortia={
            str(code): _table(table, f"parent_only_matches.consortia.{code}", path)
            for code, table in consortia.items()
        },
    )


@cache
def specialty_names() -> dict[str, str]:
    """Code -> English name of the shipped catalogue of medical subjects."""
    rows = json.loads(SPECIALTIES_FILE.read_text(encoding="utf-8"))
    return {row["code"]: row["name_en"] for row in rows}


_configured: dict[str, Path | None] = {"path": None}


def configure(path: Path | None) -> RoutingPolicy:
    """Use ``path`` (None: the shipped example) from now on; raises when it is broken."""
    policy = load(path)
    _configured["path"] = path
    return policy


def current() -> RoutingPolicy:
    return load(_configured["path"])
