"""Service-level times (data): how long a target has to answer, and worklist priority."""

from __future__ import annotations

import json
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from app.config import Settings
from app.domain.enums import Urgency

DEFAULT_FILE = Path(__file__).resolve().parent.parent / "data" / "service_levels.json"
PRIORITY = {"green_channel": 0, Urgency.EMERGENCY: 1, Urgency.URGENT: 2, Urgency.ROUTINE: 3}


@lru_cache
def _minutes(path: str, table: str = "respond_within_minutes") -> dict[str, int]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    # a file without the information table gives the source the target's answer time
    found = data.get(table) or data["respond_within_minutes"]
    return {str(k): int(v) for k, v in found.items()}


def respond_within(urgency: str, settings: Settings, *, green_channel: bool = False) -> timedelta:
    """How long the target has to answer a pending referral."""
    table = _minutes(str(settings.service_levels_file or DEFAULT_FILE))
    key = "green_channel" if green_channel else str(urgency)
    return timedelta(minutes=table[key])


def information_within(
    urgency: str, settings: Settings, *, green_channel: bool = False
) -> timedelta:
    """How long the source has to answer the target's request for information (the place
    stays held that long); unanswered, the referral expires and is routed on."""
    table = _minutes(
        str(settings.service_levels_file or DEFAULT_FILE), "information_within_minutes"
    )
    key = "green_channel" if green_channel else str(urgency)
    return timedelta(minutes=table[key])


def priority(urgency: str, *, green_channel: bool = False) -> int:
    return PRIORITY["green_channel"] if green_channel else PRIORITY[Urgency(urgency)]
