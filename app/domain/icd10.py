"""Diagnosis codes as Chinese HIS send them: the structure of each ICD-10 based edition.

Editions (``CodeSystem``), all built on the WHO ICD-10 category (``A00``) and subcategory
(``A00.0``) levels:

* ``gb_t_14396_2016``: GB/T 14396-2016 疾病分类与代码. Adds two digits after the subcategory
  digit, giving the 6-character code ``A00.000``; a category without subcategories takes ``x``
  in the subcategory place (``I10.x00``).
* ``clinical_2_0``: 疾病分类与代码国家临床版 2.0 (National Health Commission). The GB/T codes
  plus extension codes ``x`` + 3 digits after a 6-character code (``E11.900x001``,
  ``I63.900x007``); ``U`` codes are used (``U07.100``).
* ``insurance_2_0``: 医疗保障疾病诊断分类与代码 (医保版 2.0, National Healthcare Security
  Administration). The same structure as the clinical edition 2.0.
* ``unspecified``: referrals stored before the edition was recorded; never accepted as input.

Shared rules: the letter is upper case and the ``x`` marker lower case, exactly as the editions
print them (matching against a catalogue is exact, so nothing is folded). A dagger/asterisk pair
is one string, the dagger written ``†`` or ``+`` as the catalogues do (``A17.0†G01*``,
``A17.000+G01*``); an asterisk code alone is refused (it never stands as the diagnosis).

The exception message never repeats the code (a diagnosis next to a patient is personal data).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "DEFAULT_CODE_SYSTEM",
    "MORPHOLOGY_PATTERN",
    "PATTERN_ANY_EDITION",
    "CodeSystem",
    "DiagnosisCode",
    "InvalidIcd10Code",
    "InvalidMorphologyCode",
    "matches_prefix",
    "parse_code",
    "validate_icd10",
    "validate_morphology",
]


class CodeSystem(StrEnum):
    GB_T_14396_2016 = "gb_t_14396_2016"
    CLINICAL_2_0 = "clinical_2_0"
    INSURANCE_2_0 = "insurance_2_0"
    UNSPECIFIED = "unspecified"


DEFAULT_CODE_SYSTEM: Final = CodeSystem.CLINICAL_2_0

_CATEGORY: Final = r"[A-Z][0-9]{2}"
# category, subcategory, or the 6-character GB/T 14396 code (x stands for a missing subcategory)
_NODE: Final = _CATEGORY + r"(?:\.(?:[0-9]|[0-9x][0-9]{2}))?"
_EXTENDED: Final = _CATEGORY + r"\.[0-9x][0-9]{2}x[0-9]{3}"
_GB_CODE: Final = _NODE
_NATIONAL_CODE: Final = f"(?:{_EXTENDED}|{_NODE})"
_PAIR: Final = r"(?P<primary>{code})(?:[†+](?P<manifestation>{node})\*)?"
_PATTERNS: Final = {
    CodeSystem.GB_T_14396_2016: re.compile(_PAIR.format(code=_GB_CODE, node=_NODE), re.ASCII),
    CodeSystem.CLINICAL_2_0: re.compile(_PAIR.format(code=_NATIONAL_CODE, node=_NODE), re.ASCII),
    CodeSystem.INSURANCE_2_0: re.compile(_PAIR.format(code=_NATIONAL_CODE, node=_NODE), re.ASCII),
}
# stored before editions were recorded (the earlier check's shapes: upper-cased, up to four
# characters after the dot); a code of the national structure is read as well
_LEGACY: Final = re.compile(r"(?P<primary>[A-TV-Z][0-9]{2}(?:\.[0-9X]{1,4})?)", re.ASCII)
_LONE_ASTERISK: Final = re.compile(_NODE + r"\*", re.ASCII)
_MORPHOLOGY: Final = re.compile(r"M[0-9]{4}[0-9]{0,2}/[012369]", re.ASCII)
# neoplasms (chapter II, C00-D48): the only diagnoses a morphology code goes with
_NEOPLASM: Final = re.compile(r"C[0-9]{2}|D[0-3][0-9]|D4[0-8]", re.ASCII)

# for the API document: the union of the editions, and the morphology code
PATTERN_ANY_EDITION: Final = f"^(?:{_NATIONAL_CODE})(?:[†+]{_NODE}\\*)?$"
MORPHOLOGY_PATTERN: Final = f"^{_MORPHOLOGY.pattern}$"


class InvalidIcd10Code(ValueError):
    """The value does not have the structure of a code of the claimed edition."""

    def __init__(self, reason: str = "shape") -> None:
        super().__init__(f"invalid diagnosis code: {reason}")
        self.reason = reason


class InvalidMorphologyCode(ValueError):
    """Not an ICD-O-3 morphology code, or sent with a diagnosis that is not a neoplasm."""

    def __init__(self, reason: str = "shape") -> None:
        super().__init__(f"invalid morphology code: {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DiagnosisCode:
    """A code exactly as sent, the edition it claims, and its parts."""

    code: str
    system: CodeSystem
    primary: str  # the dagger code of a pair, or the code itself
    manifestation: str | None  # the asterisk code of a pair, without the asterisk

    @property
    def category(self) -> str:
        return self.primary[:3]


def _reason(code: str, pattern: re.Pattern[str]) -> str:
    if not code:
        return "empty"
    if _LONE_ASTERISK.fullmatch(code):
        return "asterisk_alone"
    if code != code.strip() or not code.replace("†", "").isascii():
        return "shape"
    if pattern.fullmatch(code.upper().replace("X", "x")):
        return "case"
    if any(p.fullmatch(code) for p in _PATTERNS.values()):
        return "other_edition"
    return "shape"


def parse_code(code: str, system: CodeSystem) -> DiagnosisCode:
    """The code, kept exactly as sent, split into its parts; or :class:`InvalidIcd10Code`."""
    pattern = _LEGACY if system is CodeSystem.UNSPECIFIED else _PATTERNS[system]
    found = pattern.fullmatch(code)
    if found is None and system is CodeSystem.UNSPECIFIED:
        found = _PATTERNS[CodeSystem.CLINICAL_2_0].fullmatch(code)
    if found is None:
        raise InvalidIcd10Code(_reason(code, pattern))
    groups = found.groupdict()
    return DiagnosisCode(code, system, groups["primary"], groups.get("manifestation"))


def validate_icd10(code: str, system: CodeSystem = DEFAULT_CODE_SYSTEM) -> str:
    """Return ``code`` unchanged when it has the edition's structure."""
    return parse_code(code, system).code


def matches_prefix(code: DiagnosisCode, prefix: str) -> bool:
    """Whether the (dagger) code falls under ``prefix``, a category or a longer code.

    Case-sensitive, as the editions are: ``E11`` covers ``E11.900x001``; ``I63.9`` covers
    ``I63.900``.
    """
    return code.primary.startswith(prefix)


def validate_morphology(morphology: str, diagnosis: DiagnosisCode) -> str:
    """Return the ICD-O-3 morphology code unchanged (``M8140/3``; the national editions add
    up to two digits, ``M81400/3``); only with a neoplasm diagnosis (C00-D48)."""
    if _MORPHOLOGY.fullmatch(morphology) is None:
        raise InvalidMorphologyCode("shape")
    if _NEOPLASM.fullmatch(diagnosis.category) is None:
        raise InvalidMorphologyCode("not_a_neoplasm")
    return morphology
