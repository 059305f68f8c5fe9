"""Service levels of remote requests (data: the ``remote`` section of the service-level file,
``app/data/service_levels.json`` or ``REFERRAL_SERVICE_LEVELS_FILE``): how long a reader has to
take or answer a pending request before it is routed on, and the report turnaround target."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.config import Settings
from app.db.models import Referral
from app.services.service_levels import DEFAULT_FILE


@dataclass(frozen=True, slots=True)
class RemoteLevel:
    answer: timedelta  # pending longer than this: expired and routed on
    report: timedelta  # the turnaround target, from the request


@lru_cache
def _table(path: str) -> dict[str, Any]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if "remote" not in data:  # an operator's file from before remote services: the shipped one
        data = json.loads(DEFAULT_FILE.read_text(encoding="utf-8"))
    table: dict[str, Any] = data["remote"]
    return table


def level(settings: Settings, kind: str, urgency: str, modality: str | None) -> RemoteLevel:
    table = _table(str(settings.service_levels_file or DEFAULT_FILE))[kind]
    found = table["modalities"].get(modality or "", {}) if "modalities" in table else {}
    minutes = found.get(urgency) or table[urgency]
    return RemoteLevel(timedelta(minutes=minutes["answer"]), timedelta(minutes=minutes["report"]))


def of(row: Referral, settings: Settings) -> RemoteLevel:
    return level(settings, row.kind, str(row.urgency), row.modality)


def check(settings: Settings) -> None:
    """At start: every kind and urgency has its minutes (a broken file stops the service)."""
    for kind in ("remote_read", "consult"):
        for urgency in ("routine", "urgent", "emergency"):
            got = level(settings, kind, urgency, None)
            if got.answer <= timedelta(0) or got.report <= timedelta(0):
                raise ValueError(f"service levels: remote.{kind}.{urgency} must be positive")
