"""Mutual recognition of test results (003: "step by step"): which prior results a target
accepts instead of repeating them. The catalogue is versioned data (which tests by code, done
at which member levels, valid how many days, what a repeat costs); the version in force on the
referral's local day decides. Each coded result of a new up-referral is marked recognised or
not, with the reason, when the referral is made; the target records what it repeated anyway."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.repositories import memberships as memberships_repo
from app.db.repositories import registry as registry_repo
from app.domain.errors import InvalidInput

DEFAULT_FILE = Path(__file__).resolve().parent.parent / "data" / "recognition.json"


@dataclass(frozen=True, slots=True)
class Item:
    code_system: str
    code: str
    name: str
    levels: frozenset[str]
    validity_days: int
    price_yuan: Decimal

    @property
    def price_fen(self) -> int:
        return int(self.price_yuan * 100)


@dataclass(frozen=True, slots=True)
class Catalogue:
    version: int
    effective_from: date
    is_example: bool
    items: dict[tuple[str, str], Item]


@lru_cache
def _versions(path: str) -> tuple[Catalogue, ...]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    out = []
    for v in data["versions"]:
        items = {
            (str(i["code_system"]), str(i["code"])): Item(
                str(i["code_system"]),
                str(i["code"]),
                str(i["name"]),
                frozenset(str(level) for level in i["levels"]),
                int(i["validity_days"]),
                Decimal(str(i["price_yuan"])),
            )
            for i in v["items"]
        }
        out.append(
            Catalogue(
                int(v["version"]),
                date.fromisoformat(v["effective_from"]),
                bool(data.get("is_example", False)),
                items,
            )
        )
    return tuple(sorted(out, key=lambda c: c.effective_from))


def in_force(settings: Settings, day: date) -> Catalogue | None:
    found = [
        c
        for c in _versions(str(settings.recognition_file or DEFAULT_FILE))
        if c.effective_from <= day
    ]
    return found[-1] if found else None


async def mark(
    session: AsyncSession,
    settings: Settings,
    consortium_id: str,
    day: date,
    tests: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], int, int]:
    """``tests`` (as sealed) with each one's ``recognition``; how many are recognised and what
    repeating them would cost (fen). An unknown performing institution is 422 naming it."""
    catalogue = in_force(settings, day)
    ids = [t["performed_by_institution_id"] for t in tests if t.get("performed_by_institution_id")]
    found = {i.id: i for i in await registry_repo.get_institutions(session, ids)}
    unknown = [
        {
            "loc": ["body", "tests_done", n, "performed_by_institution_id"],
            "msg": "unknown institution",
        }
        for n, t in enumerate(tests)
        if t.get("performed_by_institution_id") and t["performed_by_institution_id"] not in found
    ]
    if unknown:
        raise InvalidInput("The tests done name unknown institutions.", unknown)
    members = await memberships_repo.member_ids(session, consortium_id, list(found))
    marked, count, fen = [], 0, 0
    for t in tests:
        reason, item = _why_not(catalogue, found, members, day, t)
        recognised = reason is None
        if recognised and item is not None:
            count += 1
            fen += item.price_fen
        marked.append(
            {
                **t,
                "recognition": {
                    "recognised": recognised,
                    "reason": reason,
                    "catalogue_version": catalogue.version if catalogue else None,
                    "price_yuan": str(item.price_yuan) if item else None,
                },
            }
        )
    return marked, count, fen


def _why_not(
    catalogue: Catalogue | None,
    found: dict[str, Any],
    members: set[str],  # of the referral's consortium, among ``found``
    day: date,
    test: dict[str, Any],
) -> tuple[str | None, Item | None]:
    """None when recognised, else why not (a code), and the catalogue item if any."""
    if catalogue is None:
        return "no_catalogue_in_force", None
    if not test.get("code") or not test.get("code_system"):
        return "not_coded", None
    item = catalogue.items.get((str(test["code_system"]), str(test["code"])))
    if item is None:
        return "not_in_catalogue", None
    performer = found.get(test.get("performed_by_institution_id") or "")
    if performer is None:
        return "performer_unknown", item
    if performer.id not in members:
        return "performed_outside_consortium", item
    if str(performer.level) not in item.levels:
        return "performer_level_not_recognised", item
    if not test.get("done_on"):
        return "no_date", item
    age = (day - date.fromisoformat(str(test["done_on"]))).days
    if age < 0 or age > item.validity_days:
        return "too_old" if age > 0 else "in_the_future", item
    return None, item
