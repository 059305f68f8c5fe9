"""A FHIR ``ServiceRequest`` (alone with contained resources, or in a transaction ``Bundle``
with its ``Patient``, ``Condition``, ``Coverage`` and ``Observation``s) read into the
``ReferralCreate`` that ``POST /v1/referrals`` takes.

Only the shape changes here: every rule (the identity document's check digit, the code's
edition, the specialty, routing, the tier) is the ``/v1`` one, applied when the body is
validated and created. Validation errors name the FHIR element they came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from app.api.errors import _safe_msg
from app.api.schemas.referrals import ReferralCreate
from app.domain.errors import InvalidInput
from app.fhir.common import (
    CARE_TYPE,
    DIRECTION,
    EXT_DUPLICATE_REASON,
    EXT_PATHWAY,
    EXT_UP_REASON,
    ICD10_EDITIONS,
    ICD_O_3,
    INSUTYPE,
    ISO_3166,
    NS,
    SPECIALTY,
    invalid,
    reference_id,
)

Loc = tuple[str | int, ...]

URGENCY = {"routine": "routine", "urgent": "urgent", "asap": "emergency", "stat": "emergency"}
SEX = {"male": "1", "female": "2", "unknown": "0"}
DOCUMENT_TYPES = (
    "resident_id",
    "hmt_residence_permit",
    "hk_macao_travel_permit",
    "taiwan_travel_permit",
    "foreigner_permanent_id",
    "passport",
    "birth_certificate",
)

SERVICE_REQUEST_ELEMENTS = frozenset(
    {
        "resourceType",
        "id",
        "meta",
        "text",
        "contained",
        "extension",
        "identifier",
        "status",
        "intent",
        "category",
        "priority",
        "code",
        "subject",
        "occurrenceDateTime",
        "authoredOn",
        "requester",
        "performerType",
        "performer",
        "reasonCode",
        "reasonReference",
        "insurance",
        "supportingInfo",
        "note",
    }
)
PATIENT_ELEMENTS = frozenset(
    {
        "resourceType",
        "id",
        "meta",
        "text",
        "identifier",
        "name",
        "gender",
        "birthDate",
        "telecom",
        "generalPractitioner",
    }
)
CONDITION_ELEMENTS = frozenset(
    {
        "resourceType",
        "id",
        "meta",
        "text",
        "code",
        "subject",
        "clinicalStatus",
        "verificationStatus",
        "category",
    }
)
COVERAGE_ELEMENTS = frozenset(
    {"resourceType", "id", "meta", "text", "status", "type", "subscriberId", "beneficiary", "payor"}
)
OBSERVATION_ELEMENTS = frozenset(
    {
        "resourceType",
        "id",
        "meta",
        "text",
        "status",
        "code",
        "valueString",
        "effectiveDateTime",
        "performer",
        "subject",
    }
)
PRACTITIONER_ELEMENTS = frozenset({"resourceType", "id", "meta", "text", "identifier", "name"})


@dataclass
class Resolver:
    """Local references of one request: ``#id`` for contained resources, the ``fullUrl`` (or
    ``Type/id``) of a transaction's entries; each resolved resource with its FHIR path."""

    targets: dict[str, tuple[dict[str, Any], Loc]] = field(default_factory=dict)

    def resolve(self, reference: Any, resource_type: str, where: Loc) -> tuple[dict[str, Any], Loc]:
        text = reference.get("reference") if isinstance(reference, dict) else None
        found = self.targets.get(text) if isinstance(text, str) else None
        if found is None or found[0].get("resourceType") != resource_type:
            raise invalid(
                [*where, "reference"],
                f"a {resource_type} contained in the request or an entry of its Bundle",
                "reference_unresolved",
            )
        return found


def _obj(value: Any, where: Loc) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(list(where), "a JSON object", "object_type")
    return value


def _list(parent: Mapping[str, Any], name: str, where: Loc) -> list[Any]:
    value = parent.get(name, [])
    if not isinstance(value, list):
        raise invalid([*where, name], "a JSON array", "list_type")
    return value


def _str(parent: Mapping[str, Any], name: str, where: Loc) -> str | None:
    value = parent.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid([*where, name], "a string", "string_type")
    return value


def _only(resource: Mapping[str, Any], allowed: frozenset[str], where: Loc) -> None:
    for name in resource:
        if name not in allowed:
            # an element this service does not take is refused, never silently dropped
            raise invalid([*where, name], "not an element this service takes", "extra_forbidden")


def _code_in(concept: Any, system: str, where: Loc) -> str | None:
    """The code of ``concept``'s coding in ``system``."""
    if concept is None:
        return None
    for i, c in enumerate(_list(_obj(concept, where), "coding", where)):
        c = _obj(c, (*where, "coding", i))
        if c.get("system") == system:
            return _str(c, "code", (*where, "coding", i))
    return None


class Reader:
    """Reads one request into the ``ReferralCreate`` body, remembering which FHIR element
    each ``/v1`` field came from (so a validation error names the element)."""

    def __init__(self, resolver: Resolver, caller_institution_id: str | None) -> None:
        self.resolver = resolver
        self.caller = caller_institution_id
        self.origin: dict[Loc, Loc] = {}

    def put(self, body: dict[str, Any], path: Loc, value: Any, where: Loc) -> None:
        if value is None:
            return
        node = body
        for part in path[:-1]:
            node = node.setdefault(str(part), {})
        node[str(path[-1])] = value
        self.origin[path] = where

    def read(self, sr: dict[str, Any], where: Loc) -> dict[str, Any]:
        _only(sr, SERVICE_REQUEST_ELEMENTS, where)
        body: dict[str, Any] = {}
        status, intent = _str(sr, "status", where), _str(sr, "intent", where)
        if status != "active":
            raise invalid([*where, "status"], "a new referral is active", "literal_error")
        if intent != "order":
            raise invalid([*where, "intent"], "a referral is an order", "literal_error")
        self._extensions(body, sr, where)
        self._category(body, sr, where)
        priority = _str(sr, "priority", where) or "routine"
        if priority not in URGENCY:
            raise invalid([*where, "priority"], "routine, urgent, asap or stat", "enum")
        if priority == "stat" and "pathway" not in body:
            raise invalid(
                [*where, "priority"],
                "stat is the green channel: name its pathway (extension green-channel-pathway)",
                "pathway_missing",
            )
        self.put(body, ("urgency",), URGENCY[priority], (*where, "priority"))
        self.put(
            body,
            ("specialty_code",),
            _code_in(sr.get("performerType"), SPECIALTY, (*where, "performerType")),
            (*where, "performerType"),
        )
        occurrence = _str(sr, "occurrenceDateTime", where)
        self.put(body, ("wanted_day",), occurrence, (*where, "occurrenceDateTime"))
        performers = _list(sr, "performer", where)
        if len(performers) > 1:
            raise invalid([*where, "performer"], "at most one desired performer", "too_long")
        if performers:
            choice = reference_id(performers[0], "Organization", (*where, "performer", 0))
            self.put(body, ("patient_choice_institution_id",), choice, (*where, "performer", 0))
        self._requester(body, sr, where)
        self._patient(body, sr, where)
        self._coverage(body, sr, where)
        self._diagnosis(body, sr, where)
        self._tests(body, sr, where)
        notes = [
            _str(_obj(n, (*where, "note", i)), "text", (*where, "note", i)) or ""
            for i, n in enumerate(_list(sr, "note", where))
        ]
        if notes:
            self.put(body, ("clinical_summary",), "\n".join(notes), (*where, "note"))
        return body

    def _extensions(self, body: dict[str, Any], sr: dict[str, Any], where: Loc) -> None:
        fields = {
            EXT_PATHWAY: "pathway",
            EXT_UP_REASON: "reason",
            EXT_DUPLICATE_REASON: "duplicate_reason",
        }
        for i, ext in enumerate(_list(sr, "extension", where)):
            ext = _obj(ext, (*where, "extension", i))
            name = fields.get(str(ext.get("url")))
            if name is None:
                continue  # an extension this service does not know: ignored, as FHIR allows
            value = _str(ext, "valueCode", (*where, "extension", i))
            if value is None:
                raise invalid([*where, "extension", i, "valueCode"], "a code", "missing")
            self.put(body, (name,), value, (*where, "extension", i, "valueCode"))

    def _category(self, body: dict[str, Any], sr: dict[str, Any], where: Loc) -> None:
        for i, category in enumerate(_list(sr, "category", where)):
            at = (*where, "category", i)
            care = _code_in(category, CARE_TYPE, at)
            self.put(body, ("care_type",), care, at)
            direction = _code_in(category, DIRECTION, at)
            if direction not in (None, "up"):
                raise invalid(
                    list(at), "down-referrals are sent through /v1/referrals", "literal_error"
                )
        if "care_type" not in body:
            raise invalid([*where, "category"], f"a category coded in {CARE_TYPE}", "missing")

    def _requester(self, body: dict[str, Any], sr: dict[str, Any], where: Loc) -> None:
        requester = sr.get("requester")
        if requester is None:
            return
        at = (*where, "requester")
        text = _obj(requester, at).get("reference")
        if isinstance(text, str) and text.startswith("#"):
            doctor, dwhere = self.resolver.resolve(requester, "Practitioner", at)
            _only(doctor, PRACTITIONER_ELEMENTS, dwhere)
            names = _list(doctor, "name", dwhere)
            name = _human_name(names[0], (*dwhere, "name", 0)) if names else None
            ids = _list(doctor, "identifier", dwhere)
            his_id = (
                _str(_obj(ids[0], (*dwhere, "identifier", 0)), "value", dwhere) if ids else None
            )
            self.put(body, ("referring_doctor", "name"), name, (*dwhere, "name"))
            self.put(body, ("referring_doctor", "id"), his_id, (*dwhere, "identifier"))
            return
        if reference_id(requester, "Organization", at) != self.caller:
            raise invalid(
                list(at), "the requester is the caller's own institution", "requester_mismatch"
            )

    def _patient(self, body: dict[str, Any], sr: dict[str, Any], where: Loc) -> None:
        if sr.get("subject") is None:
            raise invalid([*where, "subject"], "the patient", "missing")
        patient, pw = self.resolver.resolve(sr["subject"], "Patient", (*where, "subject"))
        _only(patient, PATIENT_ELEMENTS, pw)
        self.origin[("patient",)] = pw
        names = _list(patient, "name", pw)
        if not names:
            raise invalid([*pw, "name"], "the patient's name", "missing")
        self.put(body, ("patient", "name"), _human_name(names[0], (*pw, "name", 0)), (*pw, "name"))
        identifiers = _list(patient, "identifier", pw)
        documents = []
        for i, identifier in enumerate(identifiers):
            identifier = _obj(identifier, (*pw, "identifier", i))
            system = str(identifier.get("system") or "")
            kind = system[len(NS) :] if system.startswith(NS) else None
            if kind in DOCUMENT_TYPES:
                documents.append((i, kind, identifier))
        if len(documents) != 1:
            raise invalid(
                [*pw, "identifier"],
                "exactly one identity document (system " + NS + "<type>)",
                "document_count",
            )
        i, kind, identifier = documents[0]
        at = (*pw, "identifier", i)
        doc: dict[str, Any] = {"type": kind, "number": _str(identifier, "value", at)}
        assigner = identifier.get("assigner")
        if assigner is not None:
            country = _obj(_obj(assigner, (*at, "assigner")).get("identifier"), (*at, "assigner"))
            if country.get("system") == ISO_3166:
                doc["issuing_country"] = _str(country, "value", (*at, "assigner"))
        self.put(body, ("patient", "identity_document"), doc, at)
        self.origin[("patient", "identity_document", "number")] = (*at, "value")
        gender = _str(patient, "gender", pw)
        if gender is not None:
            if gender not in SEX:
                raise invalid([*pw, "gender"], "male, female or unknown", "enum")
            self.put(body, ("patient", "sex"), SEX[gender], (*pw, "gender"))
        self.put(
            body, ("patient", "birth_date"), _str(patient, "birthDate", pw), (*pw, "birthDate")
        )
        for j, telecom in enumerate(_list(patient, "telecom", pw)):
            telecom = _obj(telecom, (*pw, "telecom", j))
            if telecom.get("system") == "phone":
                phone = _str(telecom, "value", (*pw, "telecom", j))
                self.put(body, ("patient", "phone"), phone, (*pw, "telecom", j, "value"))
                break
        signed = [
            reference_id(g, "Organization", (*pw, "generalPractitioner", j))
            for j, g in enumerate(_list(patient, "generalPractitioner", pw))
        ]
        if signed:
            self.put(
                body, ("patient", "signed_institution_ids"), signed, (*pw, "generalPractitioner")
            )

    def _coverage(self, body: dict[str, Any], sr: dict[str, Any], where: Loc) -> None:
        insurance = _list(sr, "insurance", where)
        if len(insurance) != 1:
            raise invalid([*where, "insurance"], "one Coverage: the patient's scheme", "missing")
        coverage, cw = self.resolver.resolve(insurance[0], "Coverage", (*where, "insurance", 0))
        _only(coverage, COVERAGE_ELEMENTS, cw)
        scheme = _code_in(coverage.get("type"), INSUTYPE, (*cw, "type"))
        if scheme is None:
            raise invalid([*cw, "type"], f"the scheme coded in {INSUTYPE}", "missing")
        self.put(body, ("patient", "insurance_scheme"), scheme, (*cw, "type"))
        number = _str(coverage, "subscriberId", cw)
        self.put(body, ("patient", "insurance_number"), number, (*cw, "subscriberId"))

    def _diagnosis(self, body: dict[str, Any], sr: dict[str, Any], where: Loc) -> None:
        codes, references = _list(sr, "reasonCode", where), _list(sr, "reasonReference", where)
        if len(codes) + len(references) != 1:
            raise invalid(
                [*where, "reasonCode"],
                "one reason: a reasonCode or a reasonReference to a Condition",
                "missing",
            )
        if codes:
            concept, at = _obj(codes[0], (*where, "reasonCode", 0)), (*where, "reasonCode", 0)
        else:
            condition, cw = self.resolver.resolve(
                references[0], "Condition", (*where, "reasonReference", 0)
            )
            _only(condition, CONDITION_ELEMENTS, cw)
            concept, at = _obj(condition.get("code"), (*cw, "code")), (*cw, "code")
        self.origin[("diagnosis",)] = at
        icd = None
        for i, c in enumerate(_list(concept, "coding", at)):
            c = _obj(c, (*at, "coding", i))
            system = c.get("system")
            if not isinstance(system, str):
                continue
            if system in ICD10_EDITIONS and icd is None and ICD10_EDITIONS[system] != "unspecified":
                icd = (i, ICD10_EDITIONS[system], _str(c, "code", (*at, "coding", i)))
            elif system == ICD_O_3:
                self.put(
                    body,
                    ("diagnosis", "morphology"),
                    _str(c, "code", (*at, "coding", i)),
                    (*at, "coding", i, "code"),
                )
        if icd is None:
            raise invalid(
                [*at, "coding"],
                "a code in one of the ICD-10 editions: "
                + ", ".join(s for s, e in ICD10_EDITIONS.items() if e != "unspecified"),
                "missing",
            )
        self.put(body, ("diagnosis", "icd10"), icd[2], (*at, "coding", icd[0], "code"))
        self.put(body, ("diagnosis", "code_system"), icd[1], (*at, "coding", icd[0], "system"))
        self.put(body, ("diagnosis", "text"), _str(concept, "text", at), (*at, "text"))

    def _tests(self, body: dict[str, Any], sr: dict[str, Any], where: Loc) -> None:
        tests = []
        for i, info in enumerate(_list(sr, "supportingInfo", where)):
            obs, ow = self.resolver.resolve(info, "Observation", (*where, "supportingInfo", i))
            _only(obs, OBSERVATION_ELEMENTS, ow)
            code = _obj(obs.get("code"), (*ow, "code"))
            test: dict[str, Any] = {"name": _str(code, "text", (*ow, "code"))}
            codings = _list(code, "coding", (*ow, "code"))
            if codings:
                c = _obj(codings[0], (*ow, "code", "coding", 0))
                test["code"] = _str(c, "code", (*ow, "code", "coding", 0))
                test["code_system"] = "loinc" if c.get("system") == "http://loinc.org" else None
                if test["name"] is None:
                    test["name"] = _str(c, "display", (*ow, "code", "coding", 0))
            test["result"] = _str(obs, "valueString", ow)
            effective = _str(obs, "effectiveDateTime", ow)
            test["done_on"] = effective[:10] if effective else None
            performers = _list(obs, "performer", ow)
            if performers:
                test["performed_by_institution_id"] = reference_id(
                    performers[0], "Organization", (*ow, "performer", 0)
                )
            tests.append({k: v for k, v in test.items() if v is not None})
            self.origin[("tests_done", len(tests) - 1)] = ow
        if tests:
            self.origin[("tests_done",)] = (*where, "supportingInfo")
            body["tests_done"] = tests


def _human_name(name: Any, where: Loc) -> str | None:
    name = _obj(name, where)
    text = _str(name, "text", where)
    if text:
        return text
    family = _str(name, "family", where) or ""
    given = _list(name, "given", where)
    return (family + "".join(str(g) for g in given if isinstance(g, str))) or None


def _where(reader: Reader, loc: Sequence[Any], fallback: Loc) -> list[str | int]:
    """The FHIR element a ``ReferralCreate`` validation error is about."""
    path = tuple(loc)
    while path:
        if path in reader.origin:
            return list(reader.origin[path])
        path = path[:-1]
    return list(fallback)


@dataclass(frozen=True, slots=True)
class Translated:
    """The ``/v1`` body of a FHIR request, and where each of its fields came from."""

    body: ReferralCreate
    reader: Reader
    where: Loc

    def renamed(self, exc: InvalidInput) -> InvalidInput:
        """A use case's validation error (``loc`` of the ``/v1`` body) naming the FHIR
        element instead; the same error otherwise (its kind and detail)."""
        exc.errors = [
            {**e, "loc": _where(self.reader, _v1_loc(e.get("loc")), self.where)} for e in exc.errors
        ]
        return exc


def _v1_loc(loc: Any) -> list[Any]:
    parts = list(loc or [])
    return parts[1:] if parts[:1] == ["body"] else parts


def referral_create(
    sr: dict[str, Any], resolver: Resolver, where: Loc, caller_institution_id: str | None
) -> Translated:
    reader = Reader(resolver, caller_institution_id)
    body = reader.read(sr, where)
    try:
        return Translated(ReferralCreate.model_validate(body), reader, where)
    except ValidationError as exc:
        raise InvalidInput(
            "The resource has invalid or missing elements.",
            errors=[
                {
                    "loc": _where(reader, e["loc"], where),
                    "msg": _safe_msg(e),
                    "type": e["type"],
                }
                for e in exc.errors()
            ],
        ) from None


def from_service_request(resource: Any, caller_institution_id: str | None) -> Translated:
    """``POST /fhir/ServiceRequest``: the request with its contained resources."""
    where: Loc = ("ServiceRequest",)
    sr = _obj(resource, where)
    if sr.get("resourceType") != "ServiceRequest":
        raise invalid(["ServiceRequest", "resourceType"], "a ServiceRequest", "literal_error")
    resolver = Resolver()
    for i, contained in enumerate(_list(sr, "contained", where)):
        contained = _obj(contained, (*where, "contained", i))
        cid = contained.get("id")
        if isinstance(cid, str) and cid:
            resolver.targets["#" + cid] = (contained, ("ServiceRequest", "contained", i))
    return referral_create(sr, resolver, where, caller_institution_id)


def from_transaction(bundle: Any, caller_institution_id: str | None) -> Translated:
    """``POST /fhir`` with a transaction Bundle: Patient, Condition (and Coverage,
    Observations) and the one ServiceRequest that references them."""
    where: Loc = ("Bundle",)
    bundle = _obj(bundle, where)
    if bundle.get("resourceType") != "Bundle":
        raise invalid(["Bundle", "resourceType"], "a Bundle", "literal_error")
    if bundle.get("type") != "transaction":
        raise invalid(["Bundle", "type"], "a transaction Bundle", "literal_error")
    resolver = Resolver()
    requests = []
    for i, entry in enumerate(_list(bundle, "entry", where)):
        at = (*where, "entry", i)
        entry = _obj(entry, at)
        resource = _obj(entry.get("resource"), (*at, "resource"))
        method = _obj(entry.get("request"), (*at, "request")).get("method")
        if method != "POST":
            raise invalid([*at, "request", "method"], "entries are created (POST)", "literal_error")
        rtype = resource.get("resourceType")
        if rtype == "ServiceRequest":
            requests.append((resource, (*at, "resource")))
        elif rtype in ("Patient", "Condition", "Coverage", "Observation", "Practitioner"):
            for key in (entry.get("fullUrl"), f"{rtype}/{resource.get('id')}"):
                if isinstance(key, str):
                    resolver.targets[key] = (resource, (*at, "resource"))
        else:
            raise invalid(
                [*at, "resource", "resourceType"],
                "not a resource this service takes",
                "literal_error",
            )
    if len(requests) != 1:
        raise invalid([*where, "entry"], "exactly one ServiceRequest", "missing")
    sr, sw = requests[0]
    for i, contained in enumerate(_list(sr, "contained", sw)):
        contained = _obj(contained, (*sw, "contained", i))
        if isinstance(contained.get("id"), str):
            resolver.targets["#" + contained["id"]] = (contained, (*sw, "contained", i))
    return referral_create(sr, resolver, sw, caller_institution_id)
