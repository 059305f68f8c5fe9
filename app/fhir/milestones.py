"""Green-channel milestones as FHIR ``Observation``s: each recorded milestone (its time),
and each time target of the pathway (minutes measured against the target: met, missed or
pending), all ``basedOn`` the referral's ServiceRequest."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import ValidationError

from app.api.errors import safe_msg
from app.api.schemas.pathways import MilestoneIn, MilestonesOut
from app.domain.errors import InvalidInput
from app.fhir.common import CS, concept, instant, invalid, reference_id, resource

MILESTONE = f"{CS}milestone"
TARGET = f"{CS}milestone-target"
TARGET_STATUS = f"{CS}milestone-target-status"
OBSERVATION_ELEMENTS = frozenset(
    {"resourceType", "meta", "text", "status", "code", "effectiveDateTime", "basedOn"}
)
#: MilestoneIn field -> the Observation element it comes from
ORIGIN = {"milestone": "code", "at": "effectiveDateTime"}


def _id(referral_id: str, code: str) -> str:
    local = f"{referral_id}.{code.replace('_', '-')}"  # codes are [a-z_]: still one id each
    return (
        local
        if len(local) <= 64
        else f"{referral_id}.{hashlib.sha256(code.encode()).hexdigest()[:16]}"
    )


def observations(referral_id: str, out: MilestonesOut) -> list[dict[str, Any]]:
    based_on = [{"reference": f"ServiceRequest/{referral_id}"}]
    recorded = [
        resource(
            {
                "resourceType": "Observation",
                "id": _id(referral_id, code),
                "status": "final",
                "category": [concept(CS + "observation-kind", "milestone")],
                "code": concept(MILESTONE, code),
                "basedOn": based_on,
                "effectiveDateTime": instant(at),
            }
        )
        for code, at in sorted(out.milestones.items(), key=lambda m: m[1])
    ]
    targets = [
        resource(
            {
                "resourceType": "Observation",
                "id": _id(referral_id, "target." + t.code),
                "status": "final" if t.actual_minutes is not None else "registered",
                "category": [concept(CS + "observation-kind", "milestone-target")],
                "code": {
                    "coding": [{"system": TARGET, "code": t.code, "display": t.name}],
                    "text": f"{t.from_milestone} → {t.to_milestone}",
                },
                "basedOn": based_on,
                "valueQuantity": (
                    {
                        "value": t.actual_minutes,
                        "unit": "min",
                        "system": "http://unitsofmeasure.org",
                        "code": "min",
                    }
                    if t.actual_minutes is not None
                    else None
                ),
                "interpretation": [concept(TARGET_STATUS, t.status)],
                "referenceRange": [
                    {
                        "high": {
                            "value": t.target_minutes,
                            "unit": "min",
                            "system": "http://unitsofmeasure.org",
                            "code": "min",
                        }
                    }
                ],
            }
        )
        for t in out.targets
    ]
    return recorded + targets


def milestone_of(body: Any) -> tuple[str, MilestoneIn]:
    """``POST /fhir/Observation``: the referral (``basedOn``) and the ``MilestoneIn`` of
    ``POST /v1/referrals/{id}/milestones``."""
    if not isinstance(body, dict) or body.get("resourceType") != "Observation":
        raise invalid(["Observation", "resourceType"], "an Observation", "literal_error")
    for name in body:
        if name not in OBSERVATION_ELEMENTS:
            raise invalid(
                ["Observation", name], "not an element this service takes", "extra_forbidden"
            )
    if body.get("status") != "final":
        raise invalid(["Observation", "status"], "a recorded milestone is final", "literal_error")
    based_on = body.get("basedOn")
    if not isinstance(based_on, list) or len(based_on) != 1:
        raise invalid(["Observation", "basedOn"], "the referral's ServiceRequest", "missing")
    referral_id = reference_id(based_on[0], "ServiceRequest", ["Observation", "basedOn", 0])
    code = body.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    found = [
        c.get("code")
        for c in (codings if isinstance(codings, list) else [])
        if isinstance(c, dict) and c.get("system") == MILESTONE
    ]
    if not found:
        raise invalid(["Observation", "code"], f"a milestone coded in {MILESTONE}", "missing")
    try:
        milestone = MilestoneIn.model_validate(
            {"milestone": found[0], "at": body.get("effectiveDateTime")}
        )
    except ValidationError as exc:
        raise InvalidInput(
            "The resource has invalid or missing elements.",
            errors=[
                {
                    "loc": [
                        "Observation",
                        ORIGIN.get(str(e["loc"][0]) if e["loc"] else "", "code"),
                    ],
                    "msg": safe_msg(e),
                    "type": e["type"],
                }
                for e in exc.errors()
            ],
        ) from None
    return referral_id, milestone


def renamed(exc: InvalidInput) -> InvalidInput:
    """A milestone rule's error (``body.milestone``, ``body.at``) naming the element."""
    exc.errors = [
        {**e, "loc": ["Observation", ORIGIN.get(str((e.get("loc") or ["", ""])[-1]), "code")]}
        for e in exc.errors
    ]
    return exc
