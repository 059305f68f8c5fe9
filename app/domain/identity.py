"""Resident identity number (居民身份证号码) check, GB 11643-1999.

Layout of the 18 characters:

* positions 1-6: administrative region code of the place of first registration;
* positions 7-14: birth date, ``YYYYMMDD``;
* positions 15-17: sequence number; the 17th digit is odd for men and even for women;
* position 18: check character, ISO 7064 MOD 11-2 over the first 17 digits (``0``-``9`` or ``X``).

The old 15-digit numbers (no century, no check character) are not accepted: they fail with the
reason ``length``. Surrounding whitespace is not stripped here; that is the caller's business.

The number is personal data. Nothing in this module puts it into an exception message; use
:func:`mask_resident_id` when it has to appear in a log or a screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

from app.domain.enums import Sex

__all__ = [
    "InvalidResidentId",
    "ResidentId",
    "check_character",
    "make_resident_id",
    "mask_resident_id",
    "validate_resident_id",
]

_LENGTH: Final = 18
_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_MAP: Final = "10X98765432"
_DIGITS: Final = frozenset("0123456789")
_EARLIEST_BIRTH: Final = date(1900, 1, 1)

#: Short reason codes carried by :class:`InvalidResidentId`.
REASONS: Final = ("length", "characters", "birth_date", "check_character")


class InvalidResidentId(ValueError):
    """The value is not a valid resident identity number.

    ``reason`` is one of :data:`REASONS`. The message never contains the number.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid resident identity number: {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ResidentId:
    """A checked resident identity number and what it encodes."""

    value: str
    birth_date: date
    sex: Sex
    region_code: str

    def __repr__(self) -> str:  # keep the number out of logs and tracebacks
        return f"ResidentId(value={mask_resident_id(self.value)!r})"


def check_character(first17: str) -> str:
    """Return the ISO 7064 MOD 11-2 check character for 17 ASCII digits."""
    if len(first17) != _LENGTH - 1 or not _DIGITS.issuperset(first17):
        raise ValueError("need exactly 17 ASCII digits")
    total = sum(int(ch) * w for ch, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_MAP[total % 11]


def validate_resident_id(value: str, today: date) -> ResidentId:
    """Check ``value`` and return it normalised (a lower-case ``x`` becomes ``X``).

    Checks, in order, each failing with :class:`InvalidResidentId` and the reason shown:
    18 characters (``length``); 17 ASCII digits then a digit or ``X`` (``characters``); a real
    birth date from 1900-01-01 up to ``today`` (``birth_date``); the check character
    (``check_character``).
    """
    if len(value) != _LENGTH:
        raise InvalidResidentId("length")
    normalised = value[:17] + value[17].upper()
    body, check = normalised[:17], normalised[17]
    if not _DIGITS.issuperset(body) or not (check in _DIGITS or check == "X"):
        raise InvalidResidentId("characters")
    try:
        birth = date(int(body[6:10]), int(body[10:12]), int(body[12:14]))
    except ValueError:
        raise InvalidResidentId("birth_date") from None
    if birth < _EARLIEST_BIRTH or birth > today:
        raise InvalidResidentId("birth_date")
    if check_character(body) != check:
        raise InvalidResidentId("check_character")
    return ResidentId(
        value=normalised,
        birth_date=birth,
        sex=Sex.MALE if int(body[16]) % 2 == 1 else Sex.FEMALE,
        region_code=body[:6],
    )


def mask_resident_id(value: str) -> str:
    """Mask a number for display: first 3 + 14 asterisks + the check character
    (``110**************X``).

    No birth-date or sequence digit is shown: with the region code known and the birth year and
    sex shown beside it, tens of thousands of numbers still fit the mask (the old form, last 4
    shown, left one). Anything that is not 18 characters long is masked completely, so a
    malformed value leaks nothing but its length.
    """
    if len(value) != _LENGTH:
        return "*" * len(value)
    return value[:3] + "*" * 14 + value[-1:].upper()


def make_resident_id(region: str, birth: date, seq: int) -> str:
    """Build a valid number from a 6-digit region code, a birth date and a sequence 0-999.

    The sequence's last digit decides the sex (odd = male). For tests and test data.
    """
    if len(region) != 6 or not _DIGITS.issuperset(region):
        raise ValueError("region must be 6 ASCII digits")
    if not 0 <= seq <= 999:
        raise ValueError("seq must be in 0..999")
    if birth < _EARLIEST_BIRTH:
        raise ValueError("birth date before 1900-01-01")
    body = f"{region}{birth:%Y%m%d}{seq:03d}"
    return body + check_character(body)
