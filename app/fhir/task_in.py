"""A change of ``Task.status`` (PATCH, PUT) or an ``$accept`` / ``$reject`` operation read
into the ``TransitionCommand`` that ``POST /v1/referrals/{id}/<action>`` builds, with the
body model of that action, so its validation, role rules and ETag check are the ``/v1`` ones.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from app.api.errors import safe_msg
from app.api.schemas.lifecycle import AcceptIn, NoteIn, RejectIn
from app.domain.errors import InvalidInput
from app.domain.lifecycle import Action
from app.fhir.common import REFERRAL_STATUS, REJECT_REASON, invalid
from app.services.transition_command import TransitionCommand

#: Task.status -> the action it asks for (in-progress and failed: see ``_action``)
ACTION_OF = {
    "accepted": Action.ACCEPT,
    "rejected": Action.REJECT,
    "cancelled": Action.CANCEL,
    "completed": Action.COMPLETE,
    "failed": Action.NO_SHOW,
}
#: in-progress with businessStatus -> the action entering that state
IN_PROGRESS = {
    "arrived": Action.ARRIVE,
    "admitted": Action.ADMIT,
    "seen": Action.SEE,
    "in_follow_up": Action.START_FOLLOW_UP,
}
BODY_MODEL: dict[Action, type[BaseModel]] = {Action.ACCEPT: AcceptIn, Action.REJECT: RejectIn}
#: a JSON Patch may touch these (the rest of a Task is the service's)
PATCHABLE = frozenset({"status", "statusReason", "businessStatus", "note"})


def _code(value: Any, system: str, where: str) -> str | None:
    if value is None:
        return None
    codings = value.get("coding") if isinstance(value, dict) else None
    if not isinstance(codings, list):
        raise invalid(["Task", where], "a CodeableConcept", "object_type")
    for c in codings:
        if isinstance(c, dict) and c.get("system") == system and isinstance(c.get("code"), str):
            return str(c["code"])
    return None


def changes_of_patch(body: Any) -> dict[str, Any]:
    """The elements a PATCH sets: a JSON Patch (RFC 6902) of ``replace``/``add`` operations
    on ``/status``, ``/statusReason``, ``/businessStatus`` and ``/note``, or a partial Task
    (what fhirpy's ``patch`` and JSON merge patch send)."""
    if isinstance(body, list):
        changes: dict[str, Any] = {}
        for i, op in enumerate(body):
            if not isinstance(op, dict) or op.get("op") not in ("replace", "add"):
                raise invalid(["body", i, "op"], "replace or add", "literal_error")
            path = op.get("path")
            name = path[1:] if isinstance(path, str) and path.startswith("/") else None
            if name not in PATCHABLE:
                raise invalid(
                    ["body", i, "path"],
                    "/status, /statusReason, /businessStatus or /note",
                    "literal_error",
                )
            changes[name] = op.get("value")
        return changes
    if not isinstance(body, dict):
        raise invalid(["body"], "a JSON Patch array or a partial Task", "object_type")
    extra = set(body) - PATCHABLE - {"resourceType", "id"}
    if extra:
        raise invalid(
            ["Task", sorted(extra)[0]], "not an element a PATCH may set", "extra_forbidden"
        )
    if body.get("resourceType", "Task") != "Task":
        raise invalid(["Task", "resourceType"], "a Task", "literal_error")
    return body


def changes_of_put(body: Any, referral_id: str) -> dict[str, Any]:
    """A PUT of the whole Task: its status, statusReason, businessStatus and note are what
    can change; the rest is the service's and is not read."""
    if not isinstance(body, dict) or body.get("resourceType") != "Task":
        raise invalid(["Task", "resourceType"], "a Task", "literal_error")
    if body.get("id") != referral_id:
        raise invalid(["Task", "id"], "the id of the Task in the URL", "literal_error")
    return {k: body.get(k) for k in PATCHABLE}


def _note(changes: dict[str, Any]) -> str | None:
    notes = changes.get("note")
    if notes is None:
        return None
    if not isinstance(notes, list) or not all(isinstance(n, dict) for n in notes):
        raise invalid(["Task", "note"], "a list of Annotations", "list_type")
    texts = [n.get("text") for n in notes]
    if not all(isinstance(t, str) for t in texts):
        raise invalid(["Task", "note"], "each note has text", "string_type")
    return "\n".join(str(t) for t in texts) or None


def _action(changes: dict[str, Any]) -> Action:
    status = changes.get("status")
    business = _code(changes.get("businessStatus"), REFERRAL_STATUS, "businessStatus")
    if status == "in-progress":
        if business is None:
            return Action.ARRIVE
        if business not in IN_PROGRESS:
            raise invalid(
                ["Task", "businessStatus"], "arrived, admitted, seen or in_follow_up", "enum"
            )
        return IN_PROGRESS[business]
    if not isinstance(status, str) or status not in ACTION_OF:
        raise invalid(
            ["Task", "status"],
            "accepted, rejected, in-progress, completed, cancelled or failed (no-show)",
            "enum",
        )
    action = ACTION_OF[status]
    if business is not None and business != {Action.NO_SHOW: "no_show"}.get(action, status):
        raise invalid(["Task", "businessStatus"], "the state Task.status enters", "enum")
    return action


def _validated(model: type[BaseModel], data: dict[str, Any], where: dict[str, str]) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(
            "The resource has invalid or missing elements.",
            errors=[
                {
                    "loc": ["Task", where.get(str(e["loc"][0]) if e["loc"] else "", "status")],
                    "msg": safe_msg(e),
                    "type": e["type"],
                }
                for e in exc.errors()
            ],
        ) from None


def command_of(
    referral_id: str,
    changes: dict[str, Any],
    if_match: str | None,
    user: str | None,
) -> TransitionCommand:
    action = _action(changes)
    note = _note(changes)
    data: dict[str, Any] = {"note": note} if note is not None else {}
    where = {"note": "note"}
    if action is Action.REJECT:
        reason = changes.get("statusReason")
        code = _code(reason, REJECT_REASON, "statusReason")
        if code is None:
            raise invalid(
                ["Task", "statusReason"], f"the reason coded in {REJECT_REASON}", "missing"
            )
        text = reason.get("text") if isinstance(reason, dict) else None
        data = {"reason_code": code, **({"reason_text": text} if text is not None else {})}
        where = {"reason_code": "statusReason", "reason_text": "statusReason"}
    body = _validated(BODY_MODEL.get(action, NoteIn), data, where)
    return TransitionCommand.of(referral_id, action, if_match, user, body)


def accept_command(
    referral_id: str, parameters: Any, if_match: str | None, user: str | None
) -> TransitionCommand:
    """``$accept``: Parameters ``ward``, ``bed`` (valueString), ``appointment``
    (valueDateTime), ``session`` (valueString: the outpatient session to book), ``note``
    (valueString)."""
    values = _parameters(
        parameters,
        {
            "ward": "valueString",
            "bed": "valueString",
            "appointment": "valueDateTime",
            "session": "valueString",
            "note": "valueString",
        },
    )
    renamed = {"appointment": "appointment_at", "session": "session_id"}
    data = {renamed.get(k, k): v for k, v in values.items()}
    try:
        body = AcceptIn.model_validate(data)
    except ValidationError as exc:
        raise _parameter_errors(
            exc, {"appointment_at": "appointment", "session_id": "session"}
        ) from None
    return TransitionCommand.of(referral_id, Action.ACCEPT, if_match, user, body)


def reject_command(
    referral_id: str, parameters: Any, if_match: str | None, user: str | None
) -> TransitionCommand:
    """``$reject``: Parameters ``reason`` (valueCode, a reject reason) and ``text``
    (valueString)."""
    values = _parameters(parameters, {"reason": "valueCode", "text": "valueString"})
    data = {"reason_code": values.get("reason"), "reason_text": values.get("text")}
    try:
        body = RejectIn.model_validate({k: v for k, v in data.items() if v is not None})
    except ValidationError as exc:
        raise _parameter_errors(exc, {"reason_code": "reason", "reason_text": "text"}) from None
    return TransitionCommand.of(referral_id, Action.REJECT, if_match, user, body)


def _parameters(parameters: Any, types: dict[str, str]) -> dict[str, Any]:
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise invalid(["Parameters", "resourceType"], "a Parameters resource", "literal_error")
    items = parameters.get("parameter", [])
    if not isinstance(items, list):
        raise invalid(["Parameters", "parameter"], "a JSON array", "list_type")
    values: dict[str, Any] = {}
    for i, p in enumerate(items):
        name = p.get("name") if isinstance(p, dict) else None
        if not isinstance(name, str) or name not in types:
            raise invalid(
                ["Parameters", "parameter", i, "name"],
                "one of " + ", ".join(types),
                "extra_forbidden",
            )
        kind = types[name]
        if set(p) - {"name", kind}:
            raise invalid(["Parameters", "parameter", i], f"{name} takes {kind}", "extra_forbidden")
        values[name] = p.get(kind)
    return values


def _parameter_errors(exc: ValidationError, names: dict[str, str]) -> InvalidInput:
    return InvalidInput(
        "The operation has invalid or missing parameters.",
        errors=[
            {
                "loc": [
                    "Parameters",
                    "parameter",
                    names.get(str(e["loc"][0]), str(e["loc"][0])) if e["loc"] else "",
                ],
                "msg": safe_msg(e),
                "type": e["type"],
            }
            for e in exc.errors()
        ],
    )
