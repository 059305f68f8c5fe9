"""The slot reservation policy: how much of a hospital's specialist outpatient sources is
offered to consortium referrals, how much of that is kept for its signed patients, and when the
unused signed reserve is released (``app/data/slot_reservation.json``, an example;
``REFERRAL_SLOT_RESERVATION_FILE``). Versioned: the version valid from a day applies to that
day's slots. A broken file stops the service at start (``app.main``)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.config import Settings
from app.domain.localtime import zone

DEFAULT_FILE = Path(__file__).resolve().parent.parent / "data" / "slot_reservation.json"


class SlotReservationFileError(ValueError):
    """The slot reservation file cannot be used."""


@dataclass(frozen=True, slots=True)
class Figures:
    consortium_share: Fraction
    signed_share: Fraction
    release_hours_before: int
    session_start: time

    def total_of(self, sources: int) -> int:
        """The places offered to consortium referrals of ``sources`` specialist places."""
        return math.floor(sources * self.consortium_share)

    def reserved_of(self, total: int) -> int:
        """Of ``total``, the places kept for signed patients."""
        return math.floor(total * self.signed_share)

    def release_at(self, day: date, tz: str) -> datetime:
        """The instant the unused reserve of ``day`` is released: the day's first session, in
        the consortium's time zone, less the hours before."""
        start = datetime.combine(day, self.session_start, zone(tz)).astimezone(UTC)
        return start - timedelta(hours=self.release_hours_before)


@dataclass(frozen=True, slots=True)
class Version:
    valid_from: date
    is_example: bool
    default: Figures
    consortia: dict[str, Figures]


@dataclass(frozen=True, slots=True)
class Policy:
    is_example: bool
    versions: tuple[Version, ...]

    def figures(self, day: date, consortium_code: str | None) -> Figures | None:
        """The figures in force for ``day`` (None: before every version)."""
        found = None
        for v in self.versions:
            if v.valid_from <= day:
                found = v
        if found is None:
            return None
        if consortium_code is not None and consortium_code in found.consortia:
            return found.consortia[consortium_code]
        return found.default


def _share(where: str, value: Any) -> Fraction:
    """A share as a decimal ("0.5") or a fraction ("1/3"), kept exact."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise SlotReservationFileError(f'{where}: a share as text, e.g. "0.5" or "1/3"')
    try:
        share = Fraction(str(value))
    except (ValueError, ZeroDivisionError) as exc:
        raise SlotReservationFileError(f'{where}: a share, e.g. "0.5" or "1/3"') from exc
    if not (0 <= share <= 1):
        raise SlotReservationFileError(f"{where}: a share between 0 and 1")
    return share


def _figures(where: str, data: Any) -> Figures:
    if not isinstance(data, dict):
        raise SlotReservationFileError(f"{where}: an object")
    try:
        hours = data["release_hours_before"]
        start = time.fromisoformat(str(data["session_start"]))
        consortium, signed = data["consortium_share"], data["signed_share"]
    except KeyError as exc:
        raise SlotReservationFileError(
            f"{where}: consortium_share, signed_share, release_hours_before and session_start "
            "are required"
        ) from exc
    except ValueError as exc:
        raise SlotReservationFileError(f"{where}.session_start: a time HH:MM") from exc
    if isinstance(hours, bool) or not isinstance(hours, int) or not 0 <= hours <= 24 * 30:
        raise SlotReservationFileError(f"{where}.release_hours_before: hours, 0 to 720")
    if start.tzinfo is not None:
        raise SlotReservationFileError(f"{where}.session_start: a local time, no offset")
    return Figures(
        consortium_share=_share(f"{where}.consortium_share", consortium),
        signed_share=_share(f"{where}.signed_share", signed),
        release_hours_before=hours,
        session_start=start,
    )


def parse(data: Any) -> Policy:
    if not isinstance(data, dict) or not isinstance(data.get("versions"), list):
        raise SlotReservationFileError("versions: a list")
    versions = []
    for i, v in enumerate(data["versions"]):
        where = f"versions[{i}]"
        if not isinstance(v, dict):
            raise SlotReservationFileError(f"{where}: an object")
        try:
            valid_from = date.fromisoformat(str(v["valid_from"]))
        except (KeyError, ValueError) as exc:
            raise SlotReservationFileError(f"{where}.valid_from: a date") from exc
        consortia = v.get("consortia") or {}
        if not isinstance(consortia, dict):
            raise SlotReservationFileError(f"{where}.consortia: an object")
        versions.append(
            Version(
                valid_from=valid_from,
                is_example=bool(v.get("is_example", data.get("is_example", False))),
                default=_figures(f"{where}.default", v.get("default")),
                consortia={
                    str(code): _figures(f"{where}.consortia.{code}", f)
                    for code, f in consortia.items()
                },
            )
        )
    versions.sort(key=lambda v: v.valid_from)
    if not versions:
        raise SlotReservationFileError("versions: at least one")
    if len({v.valid_from for v in versions}) != len(versions):
        raise SlotReservationFileError("versions: one version per valid_from day")
    return Policy(is_example=bool(data.get("is_example", False)), versions=tuple(versions))


@lru_cache
def load(path: str) -> Policy:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SlotReservationFileError(f"{path}: not a readable JSON file") from exc
    return parse(data)


def policy_of(settings: Settings) -> Policy:
    return load(str(settings.slot_reservation_file or DEFAULT_FILE))
