"""The patient of a referral: identity document, birth date and sex checked together; the sealed
form; what each viewer is shown of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Final

from app.api.schemas.referrals import PatientIn
from app.domain.enums import Sex, SexCode
from app.domain.errors import InvalidInput
from app.domain.identity_documents import (
    DocumentType,
    IdentityDocument,
    InvalidDocument,
    mask_document,
    validate_document,
)

if TYPE_CHECKING:
    from app.services.diagnoses import Diagnosis

_EARLIEST_BIRTH: Final = date(1900, 1, 1)
_PATIENT: Final = ["body", "patient"]


@dataclass(frozen=True, slots=True)
class CheckedPatient:
    document: IdentityDocument
    birth_date: date
    sex: Sex


def parse_sex(value: Any) -> Sex | None:
    """A GB/T 2261.1 code (``0 1 2 9``) or its word; ``None`` when not given."""
    if value is None:
        return None
    text = str(value)
    if text in SexCode._value2member_map_:
        return SexCode(text).word
    return Sex(text)  # the schema only lets codes and words through


def _invalid(detail: str, loc: list[str | int], msg: str) -> InvalidInput:
    return InvalidInput(detail, [{"loc": [*_PATIENT, *loc], "msg": msg}])


def _document(raw: dict[str, Any], loc: list[str | int], today: date) -> IdentityDocument:
    kind = raw.get("type")
    mother = None
    if kind == DocumentType.NEWBORN:
        holder = raw.get("mother") or {}
        inner = holder.get("identity_document")
        if not inner:
            raise _invalid(
                "A newborn is identified through the mother's document.",
                [*loc, "mother"],
                "required for type newborn",
            )
        mother = _document(inner, [*loc, "mother", "identity_document"], today)
    elif raw.get("mother") is not None or raw.get("birth_order") is not None:
        raise _invalid(
            "Only a newborn document names a mother and a birth order.",
            [*loc, "mother" if raw.get("mother") is not None else "birth_order"],
            "only for type newborn",
        )
    elif not raw.get("number"):
        raise _invalid("The document number is missing.", [*loc, "number"], "required")
    try:
        return validate_document(
            str(kind),
            str(raw.get("number") or ""),
            raw.get("issuing_country"),
            today,
            mother=mother,
            birth_order=raw.get("birth_order"),
        )
    except InvalidDocument as exc:
        raise _invalid(
            "The identity document is not valid for its type.",
            [*loc, exc.field],
            f"invalid ({exc.reason})",
        ) from exc


def check_patient(patient: PatientIn, today: date) -> CheckedPatient:
    """One document (``identity_document``, or ``resident_id`` as before), checked by its type;
    birth date and sex from the document where it carries them, else from the body."""
    legacy, given = patient.resident_id, patient.identity_document
    if (legacy is None) == (given is None):
        raise _invalid(
            "Give exactly one of resident_id and identity_document.",
            ["identity_document"],
            "exactly one of resident_id and identity_document",
        )
    if legacy is not None:
        try:
            doc = validate_document(DocumentType.RESIDENT_ID, str(legacy), None, today)
        except InvalidDocument as exc:
            raise _invalid(
                "The resident ID number is not valid.", ["resident_id"], f"invalid ({exc.reason})"
            ) from exc
        source = "resident_id"
    else:
        assert given is not None
        doc = _document(given.model_dump(), ["identity_document"], today)
        source = "identity_document"
    birth, sex = patient.birth_date, parse_sex(patient.sex)
    errors = []
    if doc.birth_date is not None:
        if birth is not None and birth != doc.birth_date:
            errors.append({"loc": [*_PATIENT, "birth_date"], "msg": f"does not match {source}"})
        birth = doc.birth_date
    elif birth is None:
        errors.append(
            {"loc": [*_PATIENT, "birth_date"], "msg": "required: the document does not carry it"}
        )
    elif not _EARLIEST_BIRTH <= birth <= today:
        errors.append({"loc": [*_PATIENT, "birth_date"], "msg": "from 1900-01-01 up to today"})
    elif doc.birth_yymmdd is not None and f"{birth:%y%m%d}" != doc.birth_yymmdd:
        errors.append({"loc": [*_PATIENT, "birth_date"], "msg": f"does not match {source}"})
    if doc.sex is not None:
        if sex not in (None, Sex.UNKNOWN, Sex.UNSTATED) and sex != doc.sex:
            errors.append({"loc": [*_PATIENT, "sex"], "msg": f"does not match {source}"})
        sex = doc.sex
    if errors:
        raise InvalidInput("The patient's details contradict the identity document.", errors)
    assert birth is not None
    return CheckedPatient(doc, birth, sex or Sex.UNKNOWN)


def sealed_patient(body: PatientIn, checked: CheckedPatient, signed: list[str]) -> dict[str, Any]:
    """The patient part of ``referral.sensitive``. ``resident_id`` is kept for that type, as
    referrals written before other documents existed hold only it."""
    out: dict[str, Any] = {
        "name": body.name,
        "identity_document": checked.document.to_dict(),
        "insurance_number": body.insurance_number,
        "phone": body.phone,
        "signed_institution_ids": list(signed),
    }
    if checked.document.type is DocumentType.RESIDENT_ID:
        out["resident_id"] = checked.document.number
    return out


def document_dict(patient: dict[str, Any]) -> dict[str, Any]:
    """The sealed document; referrals sealed before documents by type hold ``resident_id``."""
    found = patient.get("identity_document")
    if found:
        return dict(found)
    return {"type": DocumentType.RESIDENT_ID.value, "number": patient["resident_id"]}


def _from_dict(raw: dict[str, Any]) -> IdentityDocument:
    mother = raw.get("mother")
    return IdentityDocument(
        DocumentType(raw["type"]),
        str(raw.get("number") or ""),
        raw.get("issuing_country"),
        mother=_from_dict(mother["identity_document"]) if mother else None,
        birth_order=raw.get("birth_order"),
    )


def _masked_dict(raw: dict[str, Any]) -> dict[str, Any]:
    out = dict(raw)
    if raw.get("mother"):
        out["mother"] = {"identity_document": _masked_dict(raw["mother"]["identity_document"])}
    else:
        out["number"] = mask_document(_from_dict(raw))
    return out


def shown_patient(patient: dict[str, Any], full: bool) -> dict[str, Any]:
    """The patient as a viewer sees it: in full for the source and the target, else masked."""
    doc = document_dict(patient)
    shown = {
        "name": patient["name"],
        "identity_document": doc if full else _masked_dict(doc),
        "insurance_number": patient.get("insurance_number"),
        "signed_institution_ids": patient.get("signed_institution_ids") or [],
    }
    shown["phone"] = patient.get("phone")
    if not full and shown["insurance_number"]:
        shown["insurance_number"] = "****" + str(shown["insurance_number"])[-4:]
    if not full and shown["phone"]:
        shown["phone"] = "****" + str(shown["phone"])[-4:]
    if doc["type"] == DocumentType.RESIDENT_ID:
        shown["resident_id"] = shown["identity_document"]["number"]
    return shown


def escalation_patient(
    patient: dict[str, Any], birth_date: date, sex: Sex, insurance_scheme: str
) -> PatientIn:
    """The patient of an up-referral pre-filled from a down-referral's sealed data."""
    return PatientIn.model_validate(
        {
            "name": patient["name"],
            "identity_document": document_dict(patient),
            "birth_date": birth_date,
            "sex": sex.value,
            "insurance_scheme": insurance_scheme,
            "insurance_number": patient.get("insurance_number"),
            "phone": patient.get("phone"),
            "signed_institution_ids": [],
        }
    )


def referral_columns(
    checked: CheckedPatient,
    diagnosis: Diagnosis,
    resident_hmac: str,
    insurance_scheme: str,
) -> dict[str, Any]:
    """The patient's and the diagnosis' columns of a new referral row (up or down): what is
    kept in the clear (codes, sex, birth date, the keyed hash), the rest being sealed."""
    return {
        "insurance_scheme": insurance_scheme,
        "diagnosis_code": diagnosis.code.code,
        "diagnosis_code_system": diagnosis.code.system,
        "diagnosis_name": diagnosis.name,
        "diagnosis_morphology": diagnosis.morphology,
        "patient_sex": checked.sex.code,
        "patient_birth_date": checked.birth_date,
        "resident_id_hmac": resident_hmac,
    }
