"""Shape check for ICD-10 diagnosis codes, including the Chinese national clinical edition.

Accepted (after upper-casing): one letter ``A``-``Z`` except ``U``, two digits, then optionally a
dot followed by one to four characters, each a digit or ``X``::

    I21  I21.0  I63.900  S72.001  O80.x  ->  O80.X

Rejected: the empty string, anything containing whitespace (nothing is stripped), ``U`` codes
(reserved by the WHO for provisional and emergency use; not used for referrals), a dot with
nothing after it, and longer national extensions such as ``E11.900x001``.

This checks the shape only; it does not look the code up in a catalogue. The exception message
does not repeat the code (a diagnosis next to a patient is personal data).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["InvalidIcd10Code", "validate_icd10"]

_PATTERN: Final = re.compile(r"[A-TV-Z][0-9]{2}(?:\.[0-9X]{1,4})?")


class InvalidIcd10Code(ValueError):
    """The value does not have the shape of an ICD-10 code."""

    def __init__(self, reason: str = "shape") -> None:
        super().__init__(f"invalid ICD-10 code: {reason}")
        self.reason = reason


def validate_icd10(code: str) -> str:
    """Return ``code`` upper-cased, or raise :class:`InvalidIcd10Code`."""
    if not code:
        raise InvalidIcd10Code("empty")
    # ASCII first: str.upper() maps some non-ASCII letters to ASCII ones ("ı" becomes "I").
    if not code.isascii():
        raise InvalidIcd10Code("shape")
    normalised = code.upper()
    if normalised.startswith("U"):
        raise InvalidIcd10Code("chapter_u")
    if _PATTERN.fullmatch(normalised) is None:
        raise InvalidIcd10Code("shape")
    return normalised
