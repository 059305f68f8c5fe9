"""The elements of a FHIR ``ServiceRequest`` and the resources it references (``Patient``,
``Condition``, ``Coverage``, ``Observation``s, ``Practitioner``) read into the body of
``POST /v1/referrals`` (``create_in`` validates it and names the elements of its errors).

Only the shape changes here: every rule (the identity document's check digit, the code's
edition, the specialty, routing, the tier) is the ``/v1`` one, applied when the body is
validated and created. Validation errors name the FHIR element they came from.
"""

from __future__ import annotations

from typing import Any

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
from app.fhir.reading import (
    CONDITION_ELEMENTS,
    COVERAGE_ELEMENTS,
    OBSERVATION_ELEMENTS,
    PATIENT_ELEMENTS,
    PRACTITIONER_ELEMENTS,
    SERVICE_REQUEST_ELEMENTS,
    Loc,
    Resolver,
    array,
    code_in,
    human_name,
    obj,
    only,
    string,
)

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
        only(sr, SERVICE_REQUEST_ELEMENTS, where)
        body: dict[str, Any] = {}
        status, intent = string(sr, "status", where), string(sr, "intent", where)
        if status != "active":
            raise invalid([*where, "status"], "a new referral is active", "literal_error")
        if intent != "order":
            raise invalid([*where, "intent"], "a referral is an order", "literal_error")
        self._extensions(body, sr, where)
        self._category(body, sr, where)
        priority = string(sr, "priority", where) or "routine"
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
            code_in(sr.get("performerType"), SPECIALTY, (*where, "performerType")),
            (*where, "performerType"),
        )
        occurrence = string(sr, "occurrenceDateTime", where)
        self.put(body, ("wanted_day",), occurrence, (*where, "occurrenceDateTime"))
        performers = array(sr, "performer", where)
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
            string(obj(n, (*where, "note", i)), "text", (*where, "note", i)) or ""
            for i, n in enumerate(array(sr, "note", where))
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
        for i, ext in enumerate(array(sr, "extension", where)):
            ext = obj(ext, (*where, "extension", i))
            name = fields.get(str(ext.get("url")))
            if name is None:
                continue  # an extension this service does not know: ignored, as FHIR allows
            value = string(ext, "valueCode", (*where, "extension", i))
            if value is None:
                raise invalid([*where, "extension", i, "valueCode"], "a code", "missing")
            self.put(body, (name,), value, (*where, "extension", i, "valueCode"))

    def _category(self, body: dict[str, Any], sr: dict[str, Any], where: Loc) -> None:
        for i, category in enumerate(array(sr, "category", where)):
            at = (*where, "category", i)
            care = code_in(category, CARE_TYPE, at)
            self.put(body, ("care_type",), care, at)
            direction = code_in(category, DIRECTION, at)
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
        text = obj(requester, at).get("reference")
        if isinstance(text, str) and text.startswith("#"):
            doctor, dwhere = self.resolver.resolve(requester, "Practitioner", at)
            only(doctor, PRACTITIONER_ELEMENTS, dwhere)
            names = array(doctor, "name", dwhere)
            name = human_name(names[0], (*dwhere, "name", 0)) if names else None
            ids = array(doctor, "identifier", dwhere)
            his_id = (
                string(obj(ids[0], (*dwhere, "identifier", 0)), "value", dwhere) if ids else None
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
        only(patient, PATIENT_ELEMENTS, pw)
        self.origin[("patient",)] = pw
        names = array(patient, "name", pw)
        if not names:
            raise invalid([*pw, "name"], "the patient's name", "missing")
        self.put(body, ("patient", "name"), human_name(names[0], (*pw, "name", 0)), (*pw, "name"))
        identifiers = array(patient, "identifier", pw)
        documents = []
        for i, identifier in enumerate(identifiers):
            identifier = obj(identifier, (*pw, "identifier", i))
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
        doc: dict[str, Any] = {"type": kind, "number": string(identifier, "value", at)}
        assigner = identifier.get("assigner")
        if assigner is not None:
            country = obj(obj(assigner, (*at, "assigner")).get("identifier"), (*at, "assigner"))
            if country.get("system") == ISO_3166:
                doc["issuing_country"] = string(country, "value", (*at, "assigner"))
        self.put(body, ("patient", "identity_document"), doc, at)
        self.origin[("patient", "identity_document", "number")] = (*at, "value")
        gender = string(patient, "gender", pw)
        if gender is not None:
            if gender not in SEX:
                raise invalid([*pw, "gender"], "male, female or unknown", "enum")
            self.put(body, ("patient", "sex"), SEX[gender], (*pw, "gender"))
        self.put(
            body, ("patient", "birth_date"), string(patient, "birthDate", pw), (*pw, "birthDate")
        )
        for j, telecom in enumerate(array(patient, "telecom", pw)):
            telecom = obj(telecom, (*pw, "telecom", j))
            if telecom.get("system") == "phone":
                phone = string(telecom, "value", (*pw, "telecom", j))
                self.put(body, ("patient", "phone"), phone, (*pw, "telecom", j, "value"))
                break
        signed = [
            reference_id(g, "Organization", (*pw, "generalPractitioner", j))
            for j, g in enumerate(array(patient, "generalPractitioner", pw))
        ]
        if signed:
            self.put(
                body, ("patient", "signed_institution_ids"), signed, (*pw, "generalPractitioner")
            )

    def _coverage(self, body: dict[str, Any], sr: dict[str, Any], where: Loc) -> None:
        insurance = array(sr, "insurance", where)
        if len(insurance) != 1:
            raise invalid([*where, "insurance"], "one Coverage: the patient's scheme", "missing")
        coverage, cw = self.resolver.resolve(insurance[0], "Coverage", (*where, "insurance", 0))
        only(coverage, COVERAGE_ELEMENTS, cw)
        scheme = code_in(coverage.get("type"), INSUTYPE, (*cw, "type"))
        if scheme is None:
            raise invalid([*cw, "type"], f"the scheme coded in {INSUTYPE}", "missing")
        self.put(body, ("patient", "insurance_scheme"), scheme, (*cw, "type"))
        number = string(coverage, "subscriberId", cw)
        self.put(body, ("patient", "insurance_number"), number, (*cw, "subscriberId"))

    def _diagnosis(self, body: dict[str, Any], sr: dict[str, Any], where: Loc) -> None:
        codes, references = array(sr, "reasonCode", where), array(sr, "reasonReference", where)
        if len(codes) + len(references) != 1:
            raise invalid(
                [*where, "reasonCode"],
                "one reason: a reasonCode or a reasonReference to a Condition",
                "missing",
            )
        if codes:
            concept, at = obj(codes[0], (*where, "reasonCode", 0)), (*where, "reasonCode", 0)
        else:
            condition, cw = self.resolver.resolve(
                references[0], "Condition", (*where, "reasonReference", 0)
            )
            only(condition, CONDITION_ELEMENTS, cw)
            concept, at = obj(condition.get("code"), (*cw, "code")), (*cw, "code")
        self.origin[("diagnosis",)] = at
        icd = None
        for i, c in enumerate(array(concept, "coding", at)):
            c = obj(c, (*at, "coding", i))
            system = c.get("system")
            if not isinstance(system, str):
                continue
            if system in ICD10_EDITIONS and icd is None and ICD10_EDITIONS[system] != "unspecified":
                icd = (i, ICD10_EDITIONS[system], string(c, "code", (*at, "coding", i)))
            elif system == ICD_O_3:
                self.put(
                    body,
                    ("diagnosis", "morphology"),
                    string(c, "code", (*at, "coding", i)),
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
        self.put(body, ("diagnosis", "text"), string(concept, "text", at), (*at, "text"))

    def _tests(self, body: dict[str, Any], sr: dict[str, Any], where: Loc) -> None:
        tests = []
        for i, info in enumerate(array(sr, "supportingInfo", where)):
            obs, ow = self.resolver.resolve(info, "Observation", (*where, "supportingInfo", i))
            only(obs, OBSERVATION_ELEMENTS, ow)
            code = obj(obs.get("code"), (*ow, "code"))
            test: dict[str, Any] = {"name": string(code, "text", (*ow, "code"))}
            codings = array(code, "coding", (*ow, "code"))
            if codings:
                c = obj(codings[0], (*ow, "code", "coding", 0))
                test["code"] = string(c, "code", (*ow, "code", "coding", 0))
                test["code_system"] = "loinc" if c.get("system") == "http://loinc.org" else None
                if test["name"] is None:
                    test["name"] = string(c, "display", (*ow, "code", "coding", 0))
            test["result"] = string(obs, "valueString", ow)
            effective = string(obs, "effectiveDateTime", ow)
            test["done_on"] = effective[:10] if effective else None
            performers = array(obs, "performer", ow)
            if performers:
                test["performed_by_institution_id"] = reference_id(
                    performers[0], "Organization", (*ow, "performer", 0)
                )
            tests.append({k: v for k, v in test.items() if v is not None})
            self.origin[("tests_done", len(tests) - 1)] = ow
        if tests:
            self.origin[("tests_done",)] = (*where, "supportingInfo")
            body["tests_done"] = tests
