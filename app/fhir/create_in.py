"""A FHIR create read into the ``ReferralCreate`` that ``POST /v1/referrals`` takes: a
``ServiceRequest`` with its resources contained, or a transaction ``Bundle`` with them as
entries.

Only the shape changes here: every rule (the identity document's check digit, the code's
edition, the specialty, routing, the tier) is the ``/v1`` one, applied when the body is
validated and created; its validation errors name the FHIR element they came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.api.errors import safe_msg
from app.api.schemas.referrals import ReferralCreate
from app.domain.errors import InvalidInput
from app.fhir.common import invalid
from app.fhir.reading import Loc, Resolver, array, obj
from app.fhir.referral_in import Reader


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
                    "msg": safe_msg(e),
                    "type": e["type"],
                }
                for e in exc.errors()
            ],
        ) from None


def from_service_request(resource: Any, caller_institution_id: str | None) -> Translated:
    """``POST /fhir/ServiceRequest``: the request with its contained resources."""
    where: Loc = ("ServiceRequest",)
    sr = obj(resource, where)
    if sr.get("resourceType") != "ServiceRequest":
        raise invalid(["ServiceRequest", "resourceType"], "a ServiceRequest", "literal_error")
    resolver = Resolver()
    for i, contained in enumerate(array(sr, "contained", where)):
        contained = obj(contained, (*where, "contained", i))
        cid = contained.get("id")
        if isinstance(cid, str) and cid:
            resolver.targets["#" + cid] = (contained, ("ServiceRequest", "contained", i))
    return referral_create(sr, resolver, where, caller_institution_id)


def from_transaction(bundle: Any, caller_institution_id: str | None) -> Translated:
    """``POST /fhir`` with a transaction Bundle: Patient, Condition (and Coverage,
    Observations) and the one ServiceRequest that references them."""
    where: Loc = ("Bundle",)
    bundle = obj(bundle, where)
    if bundle.get("resourceType") != "Bundle":
        raise invalid(["Bundle", "resourceType"], "a Bundle", "literal_error")
    if bundle.get("type") != "transaction":
        raise invalid(["Bundle", "type"], "a transaction Bundle", "literal_error")
    resolver = Resolver()
    requests = []
    for i, entry in enumerate(array(bundle, "entry", where)):
        at = (*where, "entry", i)
        entry = obj(entry, at)
        resource = obj(entry.get("resource"), (*at, "resource"))
        method = obj(entry.get("request"), (*at, "request")).get("method")
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
    for i, contained in enumerate(array(sr, "contained", sw)):
        contained = obj(contained, (*sw, "contained", i))
        if isinstance(contained.get("id"), str):
            resolver.targets["#" + contained["id"]] = (contained, (*sw, "contained", i))
    return referral_create(sr, resolver, sw, caller_institution_id)
