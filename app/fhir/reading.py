"""Reading FHIR JSON: local references, typed element access and the elements each
resource may carry. Every failure is a 422 naming the element (``invalid``), never its
value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.fhir.common import invalid

Loc = tuple[str | int, ...]

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


def obj(value: Any, where: Loc) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(list(where), "a JSON object", "object_type")
    return value


def array(parent: Mapping[str, Any], name: str, where: Loc) -> list[Any]:
    value = parent.get(name, [])
    if not isinstance(value, list):
        raise invalid([*where, name], "a JSON array", "list_type")
    return value


def string(parent: Mapping[str, Any], name: str, where: Loc) -> str | None:
    value = parent.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid([*where, name], "a string", "string_type")
    return value


def only(resource: Mapping[str, Any], allowed: frozenset[str], where: Loc) -> None:
    for name in resource:
        if name not in allowed:
            # an element this service does not take is refused, never silently dropped
            raise invalid([*where, name], "not an element this service takes", "extra_forbidden")


def code_in(concept: Any, system: str, where: Loc) -> str | None:
    """The code of ``concept``'s coding in ``system``."""
    if concept is None:
        return None
    for i, c in enumerate(array(obj(concept, where), "coding", where)):
        c = obj(c, (*where, "coding", i))
        if c.get("system") == system:
            return string(c, "code", (*where, "coding", i))
    return None


def human_name(name: Any, where: Loc) -> str | None:
    name = obj(name, where)
    text = string(name, "text", where)
    if text:
        return text
    family = string(name, "family", where) or ""
    given = array(name, "given", where)
    return (family + "".join(str(g) for g in given if isinstance(g, str))) or None
