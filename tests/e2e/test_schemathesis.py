"""Schemathesis against the committed OpenAPI document, on a real uvicorn process in demo mode.

All four phases (examples, coverage, fuzzing, stateful) with every check (`ignored_auth`
included), a fixed seed and a bounded number of examples per operation, as the lead hospital of
the ZHENGHE demo consortium, after a clinic has sent it a few referrals: 0 failures expected.

Run it by hand with more examples, e.g. ``SCHEMATHESIS_MAX_EXAMPLES=200 SCHEMATHESIS_STATEFUL=400
pytest -s tests/e2e/test_schemathesis.py``; the full report is in the test's tmp_path.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import cli, free_port, start
from tests.factories import referral_body

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "openapi" / "openapi.json"
SEED = int(os.environ.get("SCHEMATHESIS_SEED", "1"))
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))  # per operation and phase
STATEFUL_EXAMPLES = int(os.environ.get("SCHEMATHESIS_STATEFUL", "60"))  # stateful scenarios
PHASES = "examples,coverage,fuzzing,stateful"
CALLER = "demo hospital ZH-CH"  # the ZHENGHE lead hospital: the target of the seeded referrals
SEEDER = "demo clinic ZH-THC-TS"  # a township health centre of the same consortium

# `positive_data_acceptance` expects a request that matches the schema to be accepted, or refused
# for reasons outside the request itself (401, 403, 404, 409, 429). These operations also apply
# rules that JSON Schema cannot state; a generated value that breaks one gets the status named
# here (problem+json), and for that operation the status counts as an acceptable answer to
# schema-valid data. Every other check, and this one for any other status, stays as it is.
RULES_BEYOND_THE_SCHEMA: dict[str, dict[str, str]] = {
    "422": {
        "list_consortia": "cursor: only a next_cursor the service issued",
        "list_institutions": "cursor: only a next_cursor the service issued",
        "list_referrals": "cursor: only a next_cursor the service issued",
        "list_webhook_subscriptions": "cursor: only a next_cursor the service issued",
        "list_webhook_deliveries": "cursor: only a next_cursor the service issued",
        "create_referral": "GB 11643 check character and birth date of the resident ID",
        "preview_routing": "pathway: a code of the green-channel pathway catalogue",
        "record_follow_up": "a visit needs visit_date, not in the future; guidance needs its text",
        "create_webhook_subscription": "url: https (http only in demo mode), a host, no userinfo",
        "quote_reimbursement": "the target is at another level than the source",
        "reject_referral": "reason_code other needs reason_text",
        "forward_referral": "the named institution must be eligible (routing's rules)",
        "place_referral": "the named institution must offer the care (routing's rules)",
        "record_repeated_tests": "each index names a test done of this referral",
        "complete_referral": "an outcome's diagnosis codes of their edition, its documents on "
        "the referral, an outcome only on up-referrals",
        "put_capacity": "specialty codes of the catalogue (GET /v1/specialties); occupied at "
        "most total; one entry per specialty and day; slot days within the configured window",
        "create_consortium": "time_zone: a zone of the IANA time-zone database",
        "update_consortium": "time_zone: a zone of the IANA time-zone database",
        "create_institution": "GB 32100 check character; grade tier equal to the level; unique ids",
        "update_institution": "GB 32100 check character; grade tier equal to the level; unique ids",
        "create_remote_request": "GB 11643 resident ID; each kind's fields (a read: modality and "
        "a study reference; a consult: specialty_code); day not in the past",
        "convert_remote_request": "specialty_code required to convert a remote read",
        "report_referral": "reported_at between the request and now",
        "put_remote_services": "specialty codes of the catalogue; each listed once",
        "put_sessions": "specialty codes of the catalogue; end after start; one entry per session "
        "id; days within the configured window",
        "accept_referral": "session_id: a session of the referral's day and specialty",
        "put_signing": "1+1+1: the signing clinic as the primary, one secondary and one "
        "tertiary at most, known institutions; GB 11643 resident ID; valid_to after valid_from",
        "put_remote_capacity": "specialty codes of the catalogue; specialty_code or modality; "
        "one entry per kind, specialty and day; days within the configured window",
        # /fhir: the bodies are FHIR resources (the schema names only resourceType), mapped
        # onto the /v1 bodies and their rules; search parameters are FHIR tokens, references
        # and paging tokens the service issued
        **{
            op: "a FHIR R4 resource or search parameter the service maps onto /v1"
            for op in (
                "fhir_create_service_request",
                "fhir_transaction",
                "fhir_patch_task",
                "fhir_update_task",
                "fhir_accept_task",
                "fhir_reject_task",
                "fhir_search_organization",
                "fhir_search_healthcare_service",
                "fhir_search_location",
                "fhir_search_service_request",
                "fhir_search_task",
                "fhir_search_observation",
                "fhir_create_observation",
            )
        },
    },
    "412": {
        f"{action}_referral": "If-Match must be the referral's current ETag"
        for action in (
            "accept",
            "reject",
            "arrive",
            "admit",
            "see",
            "start_follow_up",
            "complete",
            "cancel",
            "no_show",
            "request_information",
            "amend",
            "forward",
            "place",
            "report",
        )
    }
    | {
        "reschedule_appointment": "If-Match must be the referral's current ETag",
        "cancel_appointment": "If-Match must be the referral's current ETag",
    }
    | {
        op: 'If-Match must be W/"<version>" of the Task'
        for op in ("fhir_patch_task", "fhir_update_task", "fhir_accept_task", "fhir_reject_task")
    },
    "415": {
        "attach_document": "the body's bytes must be the document type its Content-Type names "
        "(PDF, JPEG, PNG, CDA XML without a DTD)",
    },
}
POSITIVE_ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]  # the default
# `missing_required_header`: a transition without its required If-Match answers 428 (RFC 6585)
MISSING_HEADER_ACCEPTED = ["400", "401", "403", "406", "415", "422", "428"]


def config_toml(known: dict[str, list[str]]) -> str:
    extra: dict[str, list[str]] = defaultdict(list)
    for status, operations in RULES_BEYOND_THE_SCHEMA.items():
        for operation in operations:
            extra[operation].append(status)
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for operation, statuses in extra.items():
        groups[tuple(sorted(statuses))].append(operation)
    lines = [
        "[cache]",
        "enabled = false",
        "",
        "[generation]",
        f"max-examples = {MAX_EXAMPLES}",
        # every operation refuses NUL characters in any string (422 string_nul), also inside
        # free-form objects where JSON Schema cannot say so; the hostile sweep of
        # tests/integration/test_hostile_input.py sends them to every parameter and field
        "allow-x00 = false",
        "",
        "[phases.stateful]",
        f"generation.max-examples = {STATEFUL_EXAMPLES}",
    ]
    for name, values in known.items():
        if values:
            lines += ["", f'[dictionaries."{name}"]', f"values = {json.dumps(values)}"]
    lines += ["", "[parameters]"]
    for name, values in known.items():
        where = "header" if name == "if-match" else "path"
        if values:
            lines.append(f'"{where}.{name}" = {{ dictionary = "{name}", probability = 0.5 }}')
    for statuses, operations in sorted(groups.items()):
        transitions = all(o in RULES_BEYOND_THE_SCHEMA["412"] for o in operations)
        lines += [
            "",
            "[[operations]]",
            f"include-operation-id = {json.dumps(sorted(operations))}",
            "checks.positive_data_acceptance.expected-statuses = "
            + json.dumps([*POSITIVE_ACCEPTED, *statuses]),
        ]
        if transitions:
            lines.append(
                "checks.missing_required_header.expected-statuses = "
                + json.dumps(MISSING_HEADER_ACCEPTED)
            )
    return "\n".join(lines) + "\n"


def probe_without_key(base_url: str, known: dict[str, list[str]]) -> set[tuple[str, str]]:
    """Every keyed operation called once without a key: those that answered 401."""
    paths = json.loads(OPENAPI.read_text("utf-8"))["paths"]
    refused: set[tuple[str, str]] = set()
    for path, ops in paths.items():
        for method, op in ops.items():
            if "security" not in op:
                continue
            url = re.sub(r"\{(\w+)\}", lambda m: (known.get(m.group(1)) or ["x"])[0], path)
            r = httpx.request(method.upper(), base_url + url, json={}, timeout=10)
            if r.status_code == 401:
                refused.add((method.upper(), path))
    return refused


def schemathesis(*args: str) -> list[str]:
    code = "from schemathesis.cli import schemathesis; schemathesis()"
    return [sys.executable, "-c", code, *args]


def seed(base_url: str, keys: dict[str, str]) -> dict[str, list[str]]:
    """Real objects for the caller: referrals a clinic sends it, a webhook subscription of its
    own. Their ids (and the referrals' first ETags) are offered to every phase through
    dictionaries, half the time, so operations on one object reach more than its 404."""
    clinic = {"Authorization": f"Bearer {keys[SEEDER]}"}
    hospital = {"Authorization": f"Bearer {keys[CALLER]}"}
    found = httpx.get(base_url + "/v1/institutions", params={"q": "ZH-CH"}, headers=hospital)
    own = next(i["id"] for i in found.json()["items"] if i["code"] == "ZH-CH")
    subscription = httpx.post(
        base_url + "/v1/webhook-subscriptions",
        json={"url": "http://127.0.0.1:9/his-hook", "event_types": ["referral.created"]},
        headers=hospital,
    )
    assert subscription.status_code == 201, subscription.text
    referrals = []
    for n, urgency in enumerate(("routine", "urgent", "emergency", "urgent")):
        r = httpx.post(
            base_url + "/v1/referrals",
            json=referral_body(urgency=urgency),
            headers={**clinic, "Idempotency-Key": f"seed-{n}"},
        )
        assert r.status_code == 201, r.text
        assert r.json()["target_institution_id"] == own, r.text
        referrals.append(r)
    return {
        "referral_id": [r.json()["id"] for r in referrals],
        "if-match": [r.headers["ETag"] for r in referrals],
        "episode_id": [r.json()["episode_id"] for r in referrals if r.json()["episode_id"]],
        "institution_id": [own],
        "consortium_id": [referrals[0].json()["consortium_id"]],
        "subscription_id": [subscription.json()["id"]],
    }


def test_schemathesis_all_phases_no_failures(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    server = start(
        cli("serve", "--demo"),
        {
            "REFERRAL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'st.db'}",
            "REFERRAL_DEMO_KEYS_FILE": str(keys_file),
            # one key sends thousands of requests a minute here, by design: the per-key rate
            # limit (tested on its own) would answer most of them 429 before any other code ran
            "REFERRAL_RATE_LIMIT_PER_SECOND": "0",
            "REFERRAL_WEBHOOK_ALLOW": "127.0.0.1:9",  # the seeded subscription's discard port
        },
        tmp_path / "server.log",
        port=free_port(),
    )
    try:
        keys = {k["name"]: k["key"] for k in json.loads(keys_file.read_text("utf-8"))["keys"]}
        known = seed(server.base_url, keys)
        config = tmp_path / "schemathesis.toml"
        config.write_text(config_toml(known), encoding="utf-8")
        run = subprocess.run(
            schemathesis(
                "--config-file",
                str(config),
                "run",
                str(OPENAPI),
                "--url",
                server.base_url,
                "--header",
                f"Authorization: Bearer {keys[CALLER]}",
                "--seed",
                str(SEED),
                "--phases",
                PHASES,
                "--checks",
                "all",
                "--workers",
                "1",
                "--generation-database",
                "none",
                "--no-color",
                "--report",
                "json,junit",
                "--report-dir",
                str(tmp_path / "report"),
            ),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        without_key = probe_without_key(server.base_url, known)
    finally:
        server.stop()
    (tmp_path / "schemathesis.txt").write_text(run.stdout, encoding="utf-8")
    print(run.stdout[-15_000:])
    print(run.stderr[-5_000:], file=sys.stderr)
    summary = [line for line in run.stdout.splitlines() if re.match(r"=+ .* in [\d.]+s =+$", line)]
    assert run.returncode == 0, (summary, run.stdout[-5_000:], run.stderr[-5_000:])
    assert summary and not re.search(r"failure|error", summary[-1]), summary
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in run.stdout, f"phase {phase} did not pass or did not run"
    access = [json.loads(x) for x in server.log().splitlines() if '"app.access"' in x]
    assert access and not [x for x in access if x["status"] >= 500]
    # `ignored_auth` and the coverage phase called every keyed operation without a valid key,
    # and each of them refused with 401
    paths = json.loads(OPENAPI.read_text("utf-8"))["paths"]
    keyed = {
        (m.upper(), p) for p, ops in paths.items() for m, op in ops.items() if "security" in op
    }
    refused = {(x["method"], x["route"]) for x in access if x["status"] == 401}
    # which keyless cases the generator draws shifts whenever the document changes: every
    # keyed operation is also called once without a key here, and must refuse with 401 too
    assert keyed and keyed <= refused | without_key, sorted(keyed - refused - without_key)
