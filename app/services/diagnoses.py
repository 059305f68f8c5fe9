"""Diagnosis codes of a referral: the edition's structure, then its catalogue when one is loaded.

Catalogues are CSV files of ``code,name`` per edition (``REFERRAL_ICD10_CATALOGUE_GB14396``,
``..._CLINICAL_2``, ``..._INSURANCE_2``), read once per process; a file that cannot be used
stops the start (``ConfigurationError``). Without a catalogue only the structure is checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

from app.api.schemas.referrals import DiagnosisIn
from app.config import ConfigurationError, Settings
from app.domain.errors import InvalidInput
from app.domain.icd10 import (
    DEFAULT_CODE_SYSTEM,
    CodeSystem,
    DiagnosisCode,
    InvalidIcd10Code,
    InvalidMorphologyCode,
    parse_code,
    validate_morphology,
)
from app.domain.icd10_catalogue import Catalogue, CatalogueError, parse_catalogue

SETTING_OF: Final = {
    CodeSystem.GB_T_14396_2016: "icd10_catalogue_gb14396",
    CodeSystem.CLINICAL_2_0: "icd10_catalogue_clinical_2",
    CodeSystem.INSURANCE_2_0: "icd10_catalogue_insurance_2",
}
_CODE_MSG: Final = {
    "empty": "not a code of the edition's structure",
    "shape": "not a code of the edition's structure",
    "case": "letters are upper case and the x marker lower case, as the edition prints them",
    "other_edition": "a code of another edition (an x extension is not in GB/T 14396-2016)",
    "asterisk_alone": "an asterisk code is sent with its dagger code, e.g. A17.0†G01*",
}
_MORPHOLOGY_MSG: Final = {
    "shape": "not an ICD-O-3 morphology code, e.g. M8140/3",
    "not_a_neoplasm": "a morphology code goes with a neoplasm diagnosis (C00-D48)",
}
CODE_LOC: Final = ["body", "diagnosis", "icd10"]


@dataclass(frozen=True, slots=True)
class Diagnosis:
    code: DiagnosisCode
    name: str | None
    morphology: str | None


def env_name(system: CodeSystem) -> str:
    return "REFERRAL_" + SETTING_OF[system].upper()


@lru_cache(maxsize=16)
def _load(path: Path, system: CodeSystem) -> Catalogue:
    where = f"{env_name(system)} ({path})"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{where}: the catalogue is not UTF-8 text") from exc
    except OSError as exc:
        raise ConfigurationError(f"{where}: cannot read the catalogue: {exc.strerror}") from exc
    try:
        return parse_catalogue(text, system)
    except CatalogueError as exc:
        raise ConfigurationError(f"{where}: {exc}") from exc


def catalogue(settings: Settings, system: CodeSystem) -> Catalogue | None:
    setting = SETTING_OF.get(system)
    path: Path | None = getattr(settings, setting) if setting else None
    return None if path is None else _load(path, system)


def load_catalogues(settings: Settings) -> dict[CodeSystem, int]:
    """Read every configured catalogue now (at start); the number of codes of each."""
    loaded = {system: catalogue(settings, system) for system in SETTING_OF}
    return {system: len(c) for system, c in loaded.items() if c is not None}


def validate(settings: Settings, diagnosis: DiagnosisIn) -> Diagnosis:
    """The diagnosis of a request body, kept exactly as sent, or 422 naming the field."""
    system = CodeSystem(diagnosis.code_system or DEFAULT_CODE_SYSTEM)
    try:
        code = parse_code(diagnosis.icd10, system)
    except InvalidIcd10Code as exc:
        raise InvalidInput(
            "The diagnosis code is not a code of the claimed edition.",
            [{"loc": CODE_LOC, "msg": _CODE_MSG.get(exc.reason, _CODE_MSG["shape"])}],
        ) from exc
    name = None
    listed = catalogue(settings, system)
    if listed is not None:
        name = listed.name_of(code.code)
        if name is None:
            raise InvalidInput(
                "The diagnosis code is not in the edition's catalogue.",
                [{"loc": CODE_LOC, "msg": "not in the loaded catalogue of this edition"}],
            )
    morphology = diagnosis.morphology
    if morphology is not None:
        try:
            morphology = validate_morphology(morphology, code)
        except InvalidMorphologyCode as exc:
            raise InvalidInput(
                "The morphology code cannot be used.",
                [{"loc": ["body", "diagnosis", "morphology"], "msg": _MORPHOLOGY_MSG[exc.reason]}],
            ) from exc
    return Diagnosis(code, name, morphology)
