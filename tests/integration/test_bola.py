"""Object-level authorization: every id-taking operation in the OpenAPI document is walked
with its owner, an unrelated institution and no key.

Referral operations: owner → not 404, other institution → the same 404 as a missing id,
no key → 401. Registry and capacity objects are shared reference data of the consortia: any
key reads them (200), only their council/hospital/admin writes them (others → 403).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fhir.resources.R4B.task import Task

from tests.factories import resident_id
from tests.fhir_support import build, parameters


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # the subscriptions below point at the discard port on loopback: opened explicitly
    return {"webhook_allow": "127.0.0.1:9"}


REGISTRY_READS = {
    "get_consortium",
    "get_institution",
    "get_capacity",
    "list_memberships",
    "get_remote_services",
    "get_remote_capacity",
    "list_sessions",
    # the registry under /fhir: the same shared reference data
    "fhir_read_organization",
    "fhir_read_healthcare_service",
    "fhir_read_location",
}
# the FHIR profile (extension definitions): no data of anyone, read without a key
PUBLIC_READS = {"fhir_read_structure_definition"}
# the consortium's own figures: its council (and admins) read them, anyone else gets 403
COUNCIL_READS = {"get_bed_board", "get_insurance_gateway"}
REGISTRY_WRITES = {
    "update_consortium",
    "update_institution",
    "put_capacity",
    "update_pathway",
    "join_consortium",
    "leave_consortium",
    "put_insurance_gateway",
    "delete_insurance_gateway",
    "put_remote_services",
    "put_remote_capacity",
    "put_sessions",
}
SOURCE_OPS = {
    "list_referral_tiers",
    "get_referral",
    "list_referral_events",
    "cancel_referral",
    "get_milestones",
    "list_follow_ups",
    # the filing message holds patient data: for the referring institution and its council
    "get_insurance_filing_payload",
    # a reported consult or read becomes a transfer at its asker's request
    "convert_remote_request",
}
VALID_BODIES = {
    "put_capacity": {"as_of": "2026-01-01T00:00:00+00:00", "beds": []},
    "update_pathway": {
        "targets": [{"code": "d2n", "name": "D2N", "from": "door", "to": "imaging", "minutes": 5}]
    },
    "reject_referral": {"reason_code": "no_bed"},
    "request_information_referral": {"question": "q"},
    "record_satisfaction": {"score": 3},
    "record_repeated_tests": {"items": [{"index": 0, "reason_code": "other"}]},
    "amend_referral": {"answer": "a"},
    "forward_referral": {"target_institution_id": "x", "reason_code": "other"},
    "place_referral": {"institution_id": "x", "reason_code": "other"},
    "record_milestone": {"milestone": "door", "at": "2026-01-01T00:00:00+00:00"},
    "record_follow_up": {"kind": "guidance", "guidance": "continue"},
    "put_insurance_gateway": {"url": "http://127.0.0.1:9/fsi"},
    # /fhir transitions: each a change the owner may ask for (built with the FHIR models)
    "fhir_patch_task": [{"op": "replace", "path": "/status", "value": "accepted"}],
    "fhir_update_task": {"resourceType": "Task", "status": "accepted", "intent": "order"},
    "fhir_accept_task": parameters(),
    "fhir_reject_task": parameters(reason=("valueCode", "no_bed")),
    "report_referral": {"conclusion": "c", "reader": {"name": "r"}},
    "convert_remote_request": {"care_type": "inpatient"},
    "put_remote_services": {"services": []},
    "put_remote_capacity": {"as_of": "2026-01-01T00:00:00+00:00", "capacity": []},
    "put_sessions": {"as_of": "2026-01-01T00:00:00+00:00", "sessions": []},
}


# a clinic's family-doctor signings, by its own contract number
SIGNING_OPS = {"put_signing", "get_signing", "end_signing"}
# a sub-resource the seeded referral does not have yet: its owner's 404 names that record
NOT_YET = {"get_satisfaction"}
# a version id: the referral's current version changes as the walk takes transitions
VERSIONED = {"fhir_vread_service_request", "fhir_vread_task"}
# query parameters an operation requires before it looks the object up
VALID_QUERIES = {"attach_document": {"document_type": "other"}}


async def test_every_id_operation_is_guarded(api, client, auth, app) -> None:
    spec = app.openapi()
    admin = auth("demo admin")
    ids = await api.ids()
    consortia = (await client.get("/v1/consortia", headers=admin)).json()["items"]
    zhenghe = next(c["id"] for c in consortia if c["code"] == "ZHENGHE")
    created = await api.create("demo clinic ZH-THC-TS", expect=None)
    referral = created.json()
    assert referral["target_institution_id"] == ids["ZH-CH"]
    sub = await client.post(
        "/v1/webhook-subscriptions",
        json={"url": "http://127.0.0.1:9/hook", "event_types": ["referral.created"]},
        headers=auth("demo hospital ZH-CH"),
    )
    assert sub.status_code == 201, sub.text
    filings = await client.get(f"/v1/referrals/{referral['id']}/insurance-filings", headers=admin)
    assert filings.status_code == 200 and filings.json(), filings.text  # a manual filing
    values = {
        "referral_id": referral["id"],
        "institution_id": ids["ZH-CH"],
        "consortium_id": zhenghe,
        "pathway_code": "stroke",
        "episode_id": referral["episode_id"],
        "subscription_id": sub.json()["id"],
        "delivery_id": "no-such-delivery",
        "document_id": "no-such-document",
        "filing_id": filings.json()[0]["id"],
        "organization_id": ids["ZH-CH"],
        "service_id": ids["ZH-CH"],
        "location_id": ids["ZH-CH"],
        "definition_id": "bed-capacity",
        "version_id": "1",
        "contract_id": "C-BOLA-1",
    }
    walked = 0
    operations = [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if "{" in path
    ]
    operations.sort(key=lambda o: o[1] == "delete")  # deleting goes last
    for path, method, op in operations:
        params = re.findall(r"{(\w+)}", path)
        url = path.format(**{p: values[p] for p in params})
        op_id = op["operationId"]
        call: Any = getattr(client, method)
        kwargs: dict[str, Any] = {}
        if method in ("post", "put", "patch"):
            kwargs["json"] = VALID_BODIES.get(op_id, {})
            if op_id == "fhir_update_task":  # a PUT names the Task it replaces
                kwargs["json"] = build(
                    Task.model_validate({**kwargs["json"], "id": referral["id"]})
                )
        if op_id in VALID_QUERIES:
            kwargs["params"] = VALID_QUERIES[op_id]
        no_key = await call(url, **kwargs)
        if op_id in PUBLIC_READS:
            assert no_key.status_code == 200, (op_id, no_key.status_code)
            walked += 1
            continue
        assert no_key.status_code == 401, (op_id, no_key.status_code)
        if op_id in SIGNING_OPS:  # the signing clinic's own contracts: others see none
            owner = auth("demo clinic ZH-THC-TS")
            if method == "put":
                kwargs["json"] = {
                    "resident": {"name": "签约居民", "resident_id": resident_id()},
                    "institution_ids": [ids["ZH-THC-TS"]],
                    "valid_from": "2026-01-01",
                    "valid_to": "2027-12-31",
                }
            mine = await call(url, headers=owner, **kwargs)
            assert mine.status_code in (200, 201, 204), (op_id, mine.status_code, mine.text)
            if method != "put":
                for outsider in ("demo clinic ZH-THC-LY", "demo clinic HZ-THC-XB"):
                    other = await call(url, headers=auth(outsider))
                    assert other.status_code == 404, (op_id, outsider, other.status_code)
                for role in ("demo hospital ZH-CH", "demo council ZHENGHE", "demo insurer"):
                    assert (await call(url, headers=auth(role))).status_code == 403, (op_id, role)
        elif op_id in REGISTRY_READS:
            other = await call(url, headers=auth("demo clinic HZ-THC-XB"))
            assert other.status_code == 200, op_id
        elif op_id in COUNCIL_READS:
            mine = await call(url, headers=auth("demo council ZHENGHE"))
            assert mine.status_code == 200, (op_id, mine.status_code)
            for outsider in ("demo council HUANGZHONG-1", "demo clinic HZ-THC-XB", "demo insurer"):
                other = await call(url, headers=auth(outsider))
                assert other.status_code == 403, (op_id, outsider, other.status_code)
        elif op_id in REGISTRY_WRITES:
            other = await call(url, headers=auth("demo clinic HZ-THC-XB"), **kwargs)
            assert other.status_code == 403, (op_id, other.status_code)
        else:
            assert path.startswith(
                (
                    "/v1/referrals/{referral_id}",
                    "/v1/episodes/",
                    "/v1/webhook-subscriptions/",
                    "/fhir/ServiceRequest/{referral_id}",
                    "/fhir/Task/{referral_id}",
                )
            ), f"unclassified {op_id}"
            owner = "demo clinic ZH-THC-TS" if op_id in SOURCE_OPS else "demo hospital ZH-CH"
            headers = {"If-Match": created.headers["etag"], "Idempotency-Key": uuid.uuid4().hex}
            mine = await call(url, headers={**auth(owner), **headers}, **kwargs)
            assert mine.status_code != 401, op_id
            # those name no real delivery or document; no satisfaction is recorded yet
            if (
                not {"delivery_id", "document_id"} & set(params)
                and op_id not in NOT_YET | VERSIONED
            ):
                assert mine.status_code != 404, (op_id, mine.status_code)
            for outsider in (
                "demo clinic ZH-THC-LY",
                "demo hospital HZ-FPH",
                "demo council HUANGZHONG-1",
                "demo insurer",
            ):
                other = await call(url, headers={**auth(outsider), **headers}, **kwargs)
                assert other.status_code == 404, (op_id, outsider, other.status_code)
                missing = await call(
                    url.replace(referral["id"], "missing-id"),
                    headers={**auth(outsider), **headers},
                    **kwargs,
                )
                assert _kind(other) == _kind(missing), op_id
        walked += 1
    assert walked >= 14


def _kind(r: httpx.Response) -> tuple[str, str]:
    """What an error says: the problem's type and detail, or the OperationOutcome's (/fhir)."""
    body = r.json()
    if body.get("resourceType") == "OperationOutcome":
        issue = body["issue"][0]
        return issue["details"]["coding"][0]["code"], issue["details"]["text"]
    return body["type"].rsplit("/", 1)[-1], body["detail"]


async def test_fhir_searches_list_only_the_callers_referrals(api, client, auth) -> None:
    """The worklist under /fhir is the /v1 one: others' referrals are never listed."""
    ids = await api.ids()
    referral = (await api.create("demo clinic ZH-THC-TS")).json()
    owner = f"Organization/{ids['ZH-CH']}"
    requester = f"Organization/{ids['ZH-THC-TS']}"
    searches = [f"/fhir/Task?owner={owner}", f"/fhir/ServiceRequest?requester={requester}"]
    for url in searches:
        own = await client.get(url, headers=auth("demo hospital ZH-CH"))
        assert referral["id"] in own.text, url
        for outsider in (
            "demo clinic ZH-THC-LY",
            "demo hospital HZ-FPH",
            "demo council HUANGZHONG-1",
        ):
            r = await client.get(url, headers=auth(outsider))
            assert r.status_code == 200, (url, outsider, r.text[:300])
            assert r.json()["resourceType"] == "Bundle"
            assert referral["id"] not in r.text, (url, outsider)
        assert (await client.get(url)).status_code == 401


# --- operations without an id in the path -------------------------------------------------
# the consortium's figures, scoped by ?consortium=: a council reads its own (and no other's),
# the insurer and admins any; clinics, hospitals and SMS gateways none
FIGURE_READS = {
    "/v1/reports/referrals": {"from": "2025-01-01", "to": "2025-02-01"},
    "/v1/reports/leaks": {"from": "2025-01-01", "to": "2025-02-01"},
    "/v1/reports/green-channel": {"from": "2025-01-01", "to": "2025-02-01"},
    "/v1/reports/appraisal": {"year": "2025"},
}
# any key reads them (who the key is; shared reference data)
ANY_KEY_READS = {"/v1/me"}


async def test_figures_and_the_caller_are_guarded(
    client: httpx.AsyncClient, auth: Any, app: FastAPI
) -> None:
    spec = app.openapi()
    for path in [*FIGURE_READS, *ANY_KEY_READS]:
        assert "get" in spec["paths"][path], path
    consortia = (await client.get("/v1/consortia", headers=auth("demo admin"))).json()["items"]
    zhenghe = next(c["id"] for c in consortia if c["code"] == "ZHENGHE")
    for path, params in FIGURE_READS.items():
        assert (await client.get(path, params=params)).status_code == 401, path
        own = await client.get(path, params=params, headers=auth("demo council ZHENGHE"))
        assert own.status_code == 200, (path, own.text)
        for reader in ("demo insurer", "demo admin"):
            r = await client.get(
                path, params={**params, "consortium": zhenghe}, headers=auth(reader)
            )
            assert r.status_code == 200, (path, reader, r.text)
            assert r.json() == own.json(), (path, reader)  # the same figures
        other = await client.get(
            path,
            params={**params, "consortium": zhenghe},
            headers=auth("demo council HUANGZHONG-1"),
        )
        assert other.status_code == 403, (path, other.status_code)
        for outsider in (
            "demo clinic ZH-THC-TS",
            "demo hospital ZH-CH",
            "demo notifier ZHENGHE",
        ):
            r = await client.get(path, params=params, headers=auth(outsider))
            assert r.status_code == 403, (path, outsider, r.status_code)
    me = await client.get("/v1/me", headers=auth("demo council ZHENGHE"))
    assert (me.json()["role"], me.json()["consortium_id"]) == ("council", zhenghe)
    clinic = (await client.get("/v1/me", headers=auth("demo clinic ZH-THC-TS"))).json()
    assert clinic["role"] == "clinic" and clinic["institution_id"] is not None
    assert (await client.get("/v1/me")).status_code == 401
