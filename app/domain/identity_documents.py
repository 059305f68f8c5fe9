"""Identity documents by type: format checks, what the number encodes, matching key, mask.

Types and formats (the number is upper-cased; nothing else is changed):

* ``resident_id`` 居民身份证 (GB 11643-1999): 18 characters, MOD 11-2 check, birth date and sex
  encoded. Numbers starting ``81``/``82``/``83`` or ``9`` belong to the types below and are
  refused here.
* ``hmt_residence_permit`` 港澳台居民居住证: 18 characters laid out as GB 11643 with the region
  ``810000`` (Hong Kong), ``820000`` (Macao) or ``830000`` (Taiwan); same check, date, sex.
* ``hk_macao_travel_permit`` 港澳居民来往内地通行证: ``H`` or ``M`` and 8 digits; older cards add
  a 2-digit issue count (10 digits), which is not part of the person's number.
* ``taiwan_travel_permit`` 台湾居民来往大陆通行证: 8 digits, optionally a 2-digit issue count.
* ``foreigner_permanent_id`` 外国人永久居留身份证: the 2017 card, 3 letters (nationality) and
  12 digits whose 6th-11th are the birth date ``YYMMDD``; or the 2023 card, 18 digits starting
  ``9`` with the GB 11643 layout, check, birth date and sex.
* ``passport``: 5-20 letters or digits, with ``issuing_country`` (ISO 3166-1 alpha-3).
* ``birth_certificate`` 出生医学证明: one letter and 9 digits.
* ``newborn``: a baby without a document of its own, identified by the mother's document and
  the birth order (1 for a single birth, 2 for the second twin...).

Nothing here puts a number into an exception message or a ``repr``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Final

from app.domain.enums import Sex
from app.domain.identity import InvalidResidentId, mask_resident_id, validate_resident_id

__all__ = [
    "DocumentType",
    "IdentityDocument",
    "InvalidDocument",
    "mask_document",
    "validate_document",
]


class DocumentType(StrEnum):
    RESIDENT_ID = "resident_id"
    HMT_RESIDENCE_PERMIT = "hmt_residence_permit"
    HK_MACAO_TRAVEL_PERMIT = "hk_macao_travel_permit"
    TAIWAN_TRAVEL_PERMIT = "taiwan_travel_permit"
    FOREIGNER_PERMANENT_ID = "foreigner_permanent_id"
    PASSPORT = "passport"
    BIRTH_CERTIFICATE = "birth_certificate"
    NEWBORN = "newborn"


_HMT_REGIONS: Final = ("810000", "820000", "830000")
_PATTERNS: Final = {
    DocumentType.HK_MACAO_TRAVEL_PERMIT: re.compile(r"[HM][0-9]{8}(?:[0-9]{2})?"),
    DocumentType.TAIWAN_TRAVEL_PERMIT: re.compile(r"[0-9]{8}(?:[0-9]{2})?"),
    DocumentType.PASSPORT: re.compile(r"[A-Z0-9]{5,20}"),
    DocumentType.BIRTH_CERTIFICATE: re.compile(r"[A-Z][0-9]{9}"),
}
_FOREIGNER_2017: Final = re.compile(r"[A-Z]{3}[0-9]{12}")
_COUNTRY: Final = re.compile(r"[A-Z]{3}")
#: the person's part of a number whose tail is an issue count (matching ignores the count)
_PERSON_PART: Final = {DocumentType.HK_MACAO_TRAVEL_PERMIT: 9, DocumentType.TAIWAN_TRAVEL_PERMIT: 8}


class InvalidDocument(ValueError):
    """``field`` is the part of the document at fault (``number``, ``issuing_country``,
    ``birth_order``, ``mother``); ``reason`` a short code. Never the value."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"invalid identity document {field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class IdentityDocument:
    type: DocumentType
    number: str
    issuing_country: str | None = None
    birth_date: date | None = None  # when the number encodes it
    sex: Sex | None = None  # when the number encodes it
    birth_yymmdd: str | None = None  # the 2017 foreigner card: date without its century
    mother: IdentityDocument | None = None
    birth_order: int | None = None

    def __repr__(self) -> str:
        return f"IdentityDocument(type={self.type.value!r}, number={mask_document(self)!r})"

    def match_key(self) -> str:
        """What the episode HMAC is taken of: the bare number for a resident ID (as stored
        before other types existed), ``<type>:<number>`` for the others."""
        if self.type is DocumentType.RESIDENT_ID:
            return self.number
        if self.type is DocumentType.NEWBORN:
            assert self.mother is not None
            return f"newborn:{self.mother.match_key()}:{self.birth_order}"
        number = self.number[: _PERSON_PART.get(self.type, len(self.number))]
        if self.type is DocumentType.PASSPORT:
            return f"passport:{self.issuing_country}:{number}"
        return f"{self.type.value}:{number}"

    def to_dict(self) -> dict[str, object]:
        """The sealed form (and the full view of the source and the target)."""
        out: dict[str, object] = {"type": self.type.value}
        if self.type is not DocumentType.NEWBORN:
            out["number"] = self.number
        if self.issuing_country is not None:
            out["issuing_country"] = self.issuing_country
        if self.mother is not None:
            out["mother"] = {"identity_document": self.mother.to_dict()}
            out["birth_order"] = self.birth_order
        return out


def _gb11643(number: str, today: date) -> IdentityDocument:
    try:
        rid = validate_resident_id(number, today)
    except InvalidResidentId as exc:
        raise InvalidDocument("number", exc.reason) from None
    return IdentityDocument(DocumentType.RESIDENT_ID, rid.value, None, rid.birth_date, rid.sex)


def _yymmdd(digits: str) -> str:
    for century in (1900, 2000):
        try:
            date(century + int(digits[:2]), int(digits[2:4]), int(digits[4:6]))
        except ValueError:
            continue
        return digits
    raise InvalidDocument("number", "birth_date")


def validate_document(
    doc_type: DocumentType | str,
    number: str,
    issuing_country: str | None,
    today: date,
    *,
    mother: IdentityDocument | None = None,
    birth_order: int | None = None,
) -> IdentityDocument:
    """Check a document by its type and return it normalised, with what the number encodes."""
    kind = DocumentType(doc_type)
    if kind is DocumentType.NEWBORN:
        if mother is None or mother.type is DocumentType.NEWBORN:
            raise InvalidDocument("mother", "required")
        if birth_order is None or not 1 <= birth_order <= 9:
            raise InvalidDocument("birth_order", "required")
        return IdentityDocument(kind, "", None, mother=mother, birth_order=birth_order)
    value = number.upper()
    if kind is DocumentType.PASSPORT:
        if issuing_country is None or not _COUNTRY.fullmatch(issuing_country):
            raise InvalidDocument("issuing_country", "iso_3166_alpha3")
    elif issuing_country is not None:
        raise InvalidDocument("issuing_country", "only_for_passport")
    if kind in (DocumentType.RESIDENT_ID, DocumentType.HMT_RESIDENCE_PERMIT):
        hmt = value[:6] in _HMT_REGIONS
        if (kind is DocumentType.HMT_RESIDENCE_PERMIT) != hmt or value[:1] == "9":
            raise InvalidDocument("number", "document_type")
        found = _gb11643(value, today)
        return IdentityDocument(kind, found.number, None, found.birth_date, found.sex)
    if kind is DocumentType.FOREIGNER_PERMANENT_ID:
        if len(value) == 18:
            if value[:1] != "9":
                raise InvalidDocument("number", "characters")
            found = _gb11643(value, today)
            return IdentityDocument(kind, found.number, None, found.birth_date, found.sex)
        if not _FOREIGNER_2017.fullmatch(value):
            raise InvalidDocument("number", "characters")
        return IdentityDocument(kind, value, birth_yymmdd=_yymmdd(value[5:11]))
    if not _PATTERNS[kind].fullmatch(value):
        raise InvalidDocument("number", "characters")
    return IdentityDocument(kind, value, issuing_country)


def _keep(value: str, head: int, tail: int) -> str:
    if len(value) <= head + tail:
        return "*" * len(value)
    return value[:head] + "*" * (len(value) - head - tail) + value[len(value) - tail :]


def mask_document(doc: IdentityDocument) -> str:
    """The number for viewers who are neither the source nor the target.

    Numbers that encode a birth date (resident ID, residence permit, 2023 foreigner card) keep
    only the first 3 characters and the check character, so no date or sequence digit shows;
    the 2017 foreigner card keeps its nationality letters; the others keep the type letter and
    the last 2 characters; a newborn shows the mother's masked number and the birth order.
    """
    if doc.type is DocumentType.NEWBORN:
        assert doc.mother is not None
        return f"{mask_document(doc.mother)}#{doc.birth_order}"
    if len(doc.number) == 18 and doc.number[:1].isdigit():
        return mask_resident_id(doc.number)
    if doc.type is DocumentType.FOREIGNER_PERMANENT_ID:
        return _keep(doc.number, 3, 0)
    head = 1 if doc.number[:1].isalpha() else 0
    return _keep(doc.number, head, 2)
