"""The FHIR R4 face (/fhir) over the same data, keys and rules as /v1: every answer parsed
with FHIR R4 models, every request built with them (tests/fhir_support.py)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.fhir_support import (
    CS,
    FHIR_JSON,
    NS,
    answer,
    build,
    expressions,
    outcome,
    parameters,
    patient,
    service_request,
    transaction,
)

CLINIC = "demo clinic ZH-THC-TS"
HOSPITAL = "demo hospital ZH-CH"
BUSINESS = CS + "referral-status"
SD = CS.replace("CodeSystem", "StructureDefinition")


def fhir(auth: Any, who: str, **headers: str) -> dict[str, str]:
    return {**auth(who), "Accept": FHIR_JSON, **headers}


async def create(
    client: httpx.AsyncClient, auth: Any, body: dict[str, Any] | None = None, **headers: str
) -> httpx.Response:
    h = {"Idempotency-Key": uuid.uuid4().hex, **headers}
    return await client.post(
        "/fhir/ServiceRequest",
        json=body or service_request(),
        headers={**fhir(auth, CLINIC), "Content-Type": FHIR_JSON, **h},
    )


def output(task: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [o for o in task.get("output", []) if o["type"]["coding"][0]["code"] == code]


async def pages(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> list[Any]:
    """Every entry, following the Bundles' next links."""
    entries: list[Any] = []
    next_url: str | None = url
    while next_url:
        bundle = answer(await client.get(next_url, headers=headers), 200, "Bundle")
        assert bundle["type"] == "searchset"
        entries += [e["resource"] for e in bundle.get("entry", [])]
        next_url = next(
            (link["url"] for link in bundle["link"] if link["relation"] == "next"), None
        )
    return entries


async def test_capability_statement_tells_the_truth(client, app) -> None:
    cs = answer(await client.get("/fhir/metadata"), 200, "CapabilityStatement")
    assert cs["fhirVersion"] == "4.0.1" and cs["kind"] == "instance"
    paths = app.openapi()["paths"]
    method_of = {
        "read": "get",
        "vread": "get",
        "search-type": "get",
        "create": "post",
        "update": "put",
        "patch": "patch",
    }
    declared = set()
    for resource in cs["rest"][0]["resource"]:
        kind = resource["type"]
        for interaction in resource["interaction"]:
            code = interaction["code"]
            path = {
                "read": f"/fhir/{kind}/{{}}",
                "vread": f"/fhir/{kind}/{{}}/_history/{{}}",
                "update": f"/fhir/{kind}/{{}}",
                "patch": f"/fhir/{kind}/{{}}",
            }.get(code, f"/fhir/{kind}")
            match = [p for p in paths if _shape(p) == path and method_of[code] in paths[p]]
            assert match, (kind, code)
            declared.add((match[0], method_of[code]))
        for op in resource.get("operation", []):
            path = f"/fhir/{kind}/{{}}/${op['name']}"
            match = [p for p in paths if _shape(p) == path and "post" in paths[p]]
            assert match, (kind, op["name"])
            declared.add((match[0], "post"))
        for param in resource["searchParam"]:  # each one is a query parameter of the search
            search = paths[f"/fhir/{kind}"]["get"]
            assert param["name"] in {p["name"] for p in search["parameters"]}, param
    assert cs["rest"][0]["interaction"] == [{"code": "transaction"}]
    declared.add(("/fhir", "post"))
    conformance = {
        "/fhir/metadata",
        "/fhir/StructureDefinition/{definition_id}",
        "/fhir/CodeSystem/task-output",
    }
    served = {(p, m) for p, item in paths.items() if p.startswith("/fhir") for m in item}
    assert served - declared == {(p, "get") for p in conformance}


def _shape(path: str) -> str:
    import re

    return re.sub(r"\{\w+\}", "{}", path)


async def test_registry_as_organization_healthcare_service_and_location(client, auth, api) -> None:
    ids = await api.ids()
    h = fhir(auth, "demo clinic HZ-THC-XB")
    org = answer(await client.get(f"/fhir/Organization/{ids['ZH-CH']}", headers=h), 200)
    assert org["resourceType"] == "Organization" and org["id"] == ids["ZH-CH"]
    assert {"system": NS + "institution-code", "value": "ZH-CH", "use": "usual"} in org[
        "identifier"
    ]
    types = {c["system"].rsplit("/", 1)[1]: c["code"] for t in org["type"] for c in t["coding"]}
    v1 = (await client.get(f"/v1/institutions/{ids['ZH-CH']}", headers=h)).json()
    assert types["institution-level"] == v1["level"] == "secondary"
    assert types["institution-type"] == v1["type"]
    service = answer(await client.get(f"/fhir/HealthcareService/{ids['ZH-CH']}", headers=h), 200)
    assert sorted(c["coding"][0]["code"] for c in service["specialty"]) == v1["specialties"]
    assert sorted(c["coding"][0]["code"] for c in service.get("characteristic", [])) == sorted(
        v1["centres"]
    )
    r = await client.put(
        f"/v1/institutions/{ids['ZH-CH']}/remote-services",
        json={"services": [{"kind": "remote_read", "specialty_code": "03.03"}]},
        headers=auth("demo admin"),
    )
    assert r.status_code == 200, r.text
    service = answer(await client.get(f"/fhir/HealthcareService/{ids['ZH-CH']}", headers=h), 200)
    remote = [
        {e["url"]: e for e in x["extension"]}
        for x in service["extension"]
        if x["url"].endswith("/remote-service")
    ]
    assert [(x["kind"]["valueCode"], x["specialty"]["valueCoding"]["code"]) for x in remote] == [
        ("remote_read", "03.03")
    ]
    await api.set_beds("ZH-CH", {"03": (40, 5)})
    location = answer(await client.get(f"/fhir/Location/{ids['ZH-CH']}", headers=h), 200)
    per_specialty = {
        parts["specialty"]["valueCoding"]["code"]: parts
        for x in location["extension"]
        for parts in [{e["url"]: e for e in x["extension"]}]
    }
    beds = per_specialty["03"]
    assert beds["total"]["valueUnsignedInt"] == 40 and beds["occupied"]["valueUnsignedInt"] == 5
    assert beds["free"]["valueUnsignedInt"] == 35 - beds["held"]["valueUnsignedInt"]

    # search: the consortium's institutions, two a page, the same set as /v1
    zhenghe = await client.get(
        "/v1/institutions", params={"consortium": "ZHENGHE", "limit": 200}, headers=h
    )
    expected = {i["id"] for i in zhenghe.json()["items"]}
    found = await pages(client, "/fhir/Organization?consortium=ZHENGHE&_count=7", h)
    assert [o["id"] for o in found] and len(found) == len(expected)
    assert {o["id"] for o in found} == expected
    hospitals = await pages(
        client, f"/fhir/Organization?consortium=ZHENGHE&type={CS}institution-level|secondary", h
    )
    assert hospitals and all(
        {"system": CS + "institution-level", "code": "secondary"}
        in [c for t in o["type"] for c in t["coding"]]
        for o in hospitals
    )
    strokes = await pages(client, "/fhir/HealthcareService?characteristic=stroke", h)
    assert ids["ZH-CH"] in {s["id"] for s in strokes}
    assert all(
        any(c["coding"][0]["code"] == "stroke" for c in s["characteristic"]) for s in strokes
    )
    bad = outcome(await client.get("/fhir/Organization?type=nonsense", headers=h), 422)
    assert expressions(bad) == ["query.type"]
    missing = outcome(await client.get("/fhir/Organization/no-such-id", headers=h), 404)
    assert missing["issue"][0]["code"] == "not-found"
    assert (
        outcome(await client.get(f"/fhir/Organization/{ids['ZH-CH']}"), 401)["issue"][0]["code"]
        == "login"
    )


async def test_create_answers_the_task_routing_produced_and_is_idempotent(
    client, auth, api
) -> None:
    ids = await api.ids()
    body = service_request()
    key = uuid.uuid4().hex
    r = await create(client, auth, body, **{"Idempotency-Key": key})
    task = answer(r, 201, "Task")
    assert r.headers["etag"] == 'W/"1"' and task["meta"]["versionId"] == "1"
    assert r.headers["location"].endswith(f"/fhir/ServiceRequest/{task['id']}/_history/1")
    v1 = (await api.get(CLINIC, {"id": task["id"]})).json()
    assert task["owner"]["reference"] == f"Organization/{v1['target_institution_id']}"
    assert v1["target_institution_id"] == ids["ZH-CH"]
    assert task["status"] == "requested" and v1["status"] == "pending"
    assert task["businessStatus"]["coding"] == [{"system": BUSINESS, "code": "pending"}]
    assert task["priority"] == "urgent" and task["requester"]["reference"].endswith(
        ids["ZH-THC-TS"]
    )
    assert output(task, "routing-explanation")[0]["valueString"] == v1["routing"]["explanation"]
    tier = output(task, "reimbursement-tier")
    assert tier and tier[0]["valueCodeableConcept"]["coding"][0]["code"] == v1["tier"]["tier"]
    assert task["identifier"][0]["value"] == v1["number"]

    again = await create(client, auth, body, **{"Idempotency-Key": key})
    assert answer(again, 201, "Task")["id"] == task["id"]  # the first answer, replayed
    other = service_request()
    reused = outcome(await create(client, auth, other, **{"Idempotency-Key": key}), 422)
    assert reused["issue"][0]["details"]["coding"][0]["code"] == "idempotency-key-reused"

    # If-None-Exist: the request's own identifier is its idempotency key
    ident = body["identifier"][0]
    body2 = service_request()
    cond = {"If-None-Exist": f"identifier={ident['system']}|{ident['value']}x"}
    first = answer(await _post(client, auth, body2, cond), 201, "Task")
    second = answer(await _post(client, auth, body2, cond), 201, "Task")
    assert first["id"] == second["id"] != task["id"]
    none = outcome(await _post(client, auth, service_request(), {}), 422)
    assert expressions(none) == ["header.idempotency-key"]

    # the ServiceRequest reads back what /v1 shows the source
    sr = answer(
        await client.get(f"/fhir/ServiceRequest/{task['id']}", headers=fhir(auth, CLINIC)), 200
    )
    contained = {c["resourceType"]: c for c in sr["contained"]}
    assert (
        contained["Patient"]["identifier"][0]["value"]
        == (body["contained"][0]["identifier"][0]["value"])
    )
    assert sr["performer"] == [{"reference": f"Organization/{ids['ZH-CH']}"}]
    assert sr["reasonCode"][0]["coding"][0] == {
        "system": CS + "icd-10-cn-clinical-2.0",
        "code": "I63.9",
    }
    assert contained["Coverage"]["type"]["coding"][0]["code"] == "390"
    vread = await client.get(
        f"/fhir/ServiceRequest/{task['id']}/_history/1", headers=fhir(auth, CLINIC)
    )
    assert answer(vread, 200)["id"] == task["id"]
    old = await client.get(
        f"/fhir/ServiceRequest/{task['id']}/_history/9", headers=fhir(auth, CLINIC)
    )
    outcome(old, 404)


async def _post(client, auth, body, headers) -> httpx.Response:
    return await client.post(
        "/fhir/ServiceRequest",
        json=body,
        headers={**fhir(auth, CLINIC), "Content-Type": FHIR_JSON, **headers},
    )


async def test_transaction_bundle_and_green_channel(client, auth, api) -> None:
    r = await client.post(
        "/fhir",
        json=transaction(),
        headers={**fhir(auth, CLINIC), "Idempotency-Key": uuid.uuid4().hex},
    )
    task = answer(r, 201, "Task")
    v1 = (await api.get(CLINIC, {"id": task["id"]})).json()
    assert v1["diagnosis"]["code"] == "I63.9" and v1["diagnosis"]["text"] == "脑梗死"
    assert v1["patient"]["name"] == "测试患者乙"

    stroke = service_request(
        priority="stat",
        extension=[{"url": f"{SD}green-channel-pathway", "valueCode": "stroke"}],
    )
    green = answer(await create(client, auth, stroke), 201, "Task")
    v1 = (await api.get(CLINIC, {"id": green["id"]})).json()
    assert v1["pathway_code"] == "stroke" and v1["urgency"] == "emergency"
    assert green["priority"] == "stat"
    # stat is the green channel: without a pathway it is refused, naming the element
    bad = outcome(await create(client, auth, service_request(priority="stat")), 422)
    assert expressions(bad) == ["ServiceRequest.priority"]


async def test_invalid_resources_name_the_element_and_never_echo_values(client, auth, app) -> None:
    bad_id = patient(identifier=[{"system": NS + "resident_id", "value": "350725195001011234"}])
    cases = [
        (service_request(the_patient=bad_id), "ServiceRequest.contained[0].identifier[0]"),
        (
            service_request(icd_system="http://hl7.org/fhir/sid/icd-10"),
            "ServiceRequest.reasonCode[0].coding",
        ),
        (service_request(icd10="NOTACODE"), "ServiceRequest.reasonCode[0].coding[0].code"),
        (service_request(specialty="99.99"), "ServiceRequest.performerType"),
        (service_request(care_type="home"), "ServiceRequest.category"),
        ({**service_request(), "orderDetail": [{"text": "x"}]}, "ServiceRequest.orderDetail"),
        ({**service_request(), "status": "completed"}, "ServiceRequest.status"),
    ]
    for body, where in cases:
        r = await create(client, auth, body)
        o = outcome(r, 422)
        assert any(e.startswith(where) for e in expressions(o)), (where, o)
        assert "350725195001011234" not in r.text and "NOTACODE" not in r.text
        assert "测试患者乙" not in r.text
    for wrong in ({"resourceType": "Patient"}, {"not": "fhir"}):
        outcome(await create(client, auth, wrong), 422)
    # a hospital's key creates as /v1 lets it; an insurer's does not
    denied = await client.post(
        "/fhir/ServiceRequest",
        json=service_request(),
        headers={**fhir(auth, "demo insurer"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert outcome(denied, 403)["issue"][0]["code"] == "forbidden"


async def test_task_transitions_follow_the_v1_rules(client, auth, api) -> None:
    task = answer(await create(client, auth), 201, "Task")
    url = f"/fhir/Task/{task['id']}"
    accept = [{"op": "replace", "path": "/status", "value": "accepted"}]
    patch_type = {"Content-Type": "application/json-patch+json"}
    no_match = await client.patch(url, json=accept, headers={**fhir(auth, HOSPITAL), **patch_type})
    assert outcome(no_match, 428)["issue"][0]["code"] == "required"
    stale = await client.patch(
        url, json=accept, headers={**fhir(auth, HOSPITAL, **{"If-Match": 'W/"7"'}), **patch_type}
    )
    outcome(stale, 412)
    # the source may not accept: the same answer as /v1 gives it
    v1_try = await api.act(CLINIC, {"id": task["id"], "version": 1}, "accept", expect=None)
    by_source = await client.patch(
        url, json=accept, headers={**fhir(auth, CLINIC, **{"If-Match": 'W/"1"'}), **patch_type}
    )
    assert by_source.status_code == v1_try.status_code >= 400
    outcome(by_source, v1_try.status_code)

    accepted = await client.post(
        f"{url}/$accept",
        json=parameters(ward=("valueString", "3病区"), note=("valueString", "ok")),
        headers=fhir(auth, HOSPITAL, **{"If-Match": 'W/"1"'}),
    )
    t = answer(accepted, 200, "Task")
    assert (t["status"], t["meta"]["versionId"], accepted.headers["etag"]) == (
        "accepted",
        "2",
        'W/"2"',
    )
    again = await client.post(
        f"{url}/$accept", json=parameters(), headers=fhir(auth, HOSPITAL, **{"If-Match": 'W/"2"'})
    )
    assert outcome(again, 409)["issue"][0]["code"] == "conflict"

    # fhirpy-style PATCH: a partial Task; then a PUT of the whole Task
    arrived = await client.patch(
        url, json={"status": "in-progress"}, headers=fhir(auth, HOSPITAL, **{"If-Match": 'W/"2"'})
    )
    t = answer(arrived, 200, "Task")
    assert t["businessStatus"]["coding"][0]["code"] == "arrived" and t["status"] == "in-progress"
    t["businessStatus"] = {"coding": [{"system": BUSINESS, "code": "admitted"}]}
    admitted = await client.put(
        url, json=build_task(t), headers=fhir(auth, HOSPITAL, **{"If-Match": 'W/"3"'})
    )
    t = answer(admitted, 200, "Task")
    assert t["businessStatus"]["coding"][0]["code"] == "admitted"
    completed = await client.patch(
        url, json={"status": "completed"}, headers=fhir(auth, HOSPITAL, **{"If-Match": 'W/"4"'})
    )
    assert answer(completed, 200, "Task")["status"] == "completed"
    v1 = (await api.get(CLINIC, {"id": task["id"]})).json()
    assert (v1["status"], v1["version"]) == ("completed", 5)
    events = (await client.get(f"/v1/referrals/{task['id']}/events", headers=auth(CLINIC))).json()
    assert [e["to_status"] for e in events][-4:] == ["accepted", "arrived", "admitted", "completed"]
    bad = await client.patch(
        url, json={"status": "draft"}, headers=fhir(auth, HOSPITAL, **{"If-Match": 'W/"5"'})
    )
    assert expressions(outcome(bad, 422)) == ["Task.status"]


def build_task(t: dict[str, Any]) -> dict[str, Any]:
    from fhir.resources.R4B.task import Task

    return build(Task.model_validate(t))


async def test_reject_reroutes_and_the_worklist_pages(client, auth, api) -> None:
    ids = await api.ids()
    made = [answer(await create(client, auth), 201, "Task") for _ in range(3)]
    first = made[0]
    missing_reason = await client.post(
        f"/fhir/Task/{first['id']}/$reject",
        json=parameters(text=("valueString", "x")),
        headers=fhir(auth, HOSPITAL, **{"If-Match": 'W/"1"'}),
    )
    assert expressions(outcome(missing_reason, 422)) == ["Parameters.parameter.reason"]
    rejected = await client.post(
        f"/fhir/Task/{first['id']}/$reject",
        json=parameters(reason=("valueCode", "no_bed")),
        headers=fhir(auth, HOSPITAL, **{"If-Match": 'W/"1"'}),
    )
    answer(rejected, 200, "Task")
    v1 = (await api.get(CLINIC, {"id": first["id"]})).json()
    assert v1["target_institution_id"] != ids["ZH-CH"]  # sent on, as /v1 re-routes
    # the rejecting hospital lost it: the same 404 as for a missing id
    gone = await client.get(f"/fhir/Task/{first['id']}", headers=fhir(auth, HOSPITAL))
    outcome(gone, 404)
    task = answer(await client.get(f"/fhir/Task/{first['id']}", headers=fhir(auth, CLINIC)), 200)
    assert task["owner"] == {"reference": f"Organization/{v1['target_institution_id']}"}

    # the hospital's worklist, one a page, in /v1's order
    h = fhir(auth, HOSPITAL)
    found = await pages(
        client,
        f"/fhir/Task?owner=Organization/{ids['ZH-CH']}&status=requested&_sort=priority&_count=1",
        h,
    )
    listed = await client.get(
        "/v1/referrals", params={"box": "incoming", "status": "pending", "limit": 200}, headers=h
    )
    assert [t["id"] for t in found] == [i["id"] for i in listed.json()["items"]]
    assert {m["id"] for m in made[1:]} <= {t["id"] for t in found}
    assert first["id"] not in {t["id"] for t in found}
    assert all(t["owner"]["reference"] == f"Organization/{ids['ZH-CH']}" for t in found)
    outcome(await client.get("/fhir/Task?_sort=-lastModified", headers=h), 422)
    outcome(await client.get("/fhir/Task?status=bogus", headers=h), 422)
    outcome(await client.get("/fhir/Task?_cursor=!!!!", headers=h), 422)

    mine = await pages(
        client,
        f"/fhir/ServiceRequest?requester=Organization/{ids['ZH-THC-TS']}&_count=2",
        fhir(auth, CLINIC),
    )
    assert {m["id"] for m in made} <= {s["id"] for s in mine}
    assert all(s["requester"]["reference"].endswith(ids["ZH-THC-TS"]) for s in mine)


@pytest.mark.parametrize(
    "path",
    [
        "/fhir/StructureDefinition/green-channel-pathway",
        "/fhir/StructureDefinition/bed-capacity",
        "/fhir/StructureDefinition/remote-service",
        "/fhir/CodeSystem/task-output",
    ],
)
async def test_profile_is_published(client, path) -> None:
    resource = answer(await client.get(path), 200)
    assert resource["url"].startswith("https://referral.example.org/fhir/")


async def test_milestones_as_observations(client, auth, api) -> None:
    from datetime import UTC, datetime, timedelta

    from fhir.resources.R4B.observation import Observation

    stroke = service_request(
        priority="stat", extension=[{"url": f"{SD}green-channel-pathway", "valueCode": "stroke"}]
    )
    task = answer(await create(client, auth, stroke), 201, "Task")
    door_at = (datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0)

    def milestone(code: str, at: datetime) -> dict[str, Any]:
        return build(
            Observation.model_validate(
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": CS + "milestone", "code": code}]},
                    "effectiveDateTime": at.isoformat(),
                    "basedOn": [{"reference": f"ServiceRequest/{task['id']}"}],
                }
            )
        )

    by_source = await client.post(
        "/fhir/Observation", json=milestone("door", door_at), headers=fhir(auth, CLINIC)
    )
    v1_try = await client.post(
        f"/v1/referrals/{task['id']}/milestones",
        json={"milestone": "door", "at": door_at.isoformat()},
        headers=auth(CLINIC),
    )
    assert by_source.status_code == v1_try.status_code == 403
    outcome(by_source, 403)
    future = await client.post(
        "/fhir/Observation",
        json=milestone("door", datetime.now(UTC) + timedelta(hours=2)),
        headers=fhir(auth, HOSPITAL),
    )
    assert expressions(outcome(future, 422)) == ["Observation.effectiveDateTime"]
    made = await client.post(
        "/fhir/Observation", json=milestone("door", door_at), headers=fhir(auth, HOSPITAL)
    )
    door = answer(made, 201, "Observation")
    assert door["code"]["coding"][0]["code"] == "door"
    found = await pages(
        client, f"/fhir/Observation?based-on=ServiceRequest/{task['id']}", fhir(auth, CLINIC)
    )
    v1 = (await client.get(f"/v1/referrals/{task['id']}/milestones", headers=auth(CLINIC))).json()
    recorded = {
        o["code"]["coding"][0]["code"]: o["effectiveDateTime"]
        for o in found
        if o["category"][0]["coding"][0]["code"] == "milestone"
    }
    assert set(recorded) == set(v1["milestones"]) and "door" in recorded
    targets = {
        o["code"]["coding"][0]["code"]: o["interpretation"][0]["coding"][0]["code"]
        for o in found
        if o["category"][0]["coding"][0]["code"] == "milestone-target"
    }
    assert targets == {t["code"]: t["status"] for t in v1["targets"]}
    # others' referrals have no observations for them
    other = await client.get(
        f"/fhir/Observation?based-on=ServiceRequest/{task['id']}",
        headers=fhir(auth, "demo hospital HZ-FPH"),
    )
    assert answer(other, 200, "Bundle").get("entry", []) == []


async def test_down_referral_read_and_taken_through_fhir(client, auth, api) -> None:
    from tests.integration.test_down_referral_api import _admitted_up

    ids = await api.ids()
    up, the_patient = await _admitted_up(api, ids)
    down = (await api.create_down("demo hospital HZ-FPH", up, the_patient)).json()
    clinic = "demo clinic HZ-THC-SXZ"
    sr = answer(
        await client.get(f"/fhir/ServiceRequest/{down['id']}", headers=fhir(auth, clinic)), 200
    )
    assert {"system": CS + "referral-direction", "code": "down"} in [
        c for cat in sr["category"] for c in cat["coding"]
    ]
    url = f"/fhir/Task/{down['id']}"
    steps = [
        ({"status": "accepted"}, "accepted", "accepted"),
        ({"status": "in-progress"}, "in-progress", "arrived"),
        (
            {
                "status": "in-progress",
                "businessStatus": {"coding": [{"system": BUSINESS, "code": "in_follow_up"}]},
            },
            "in-progress",
            "in_follow_up",
        ),
    ]
    for version, (change, status, state) in enumerate(steps, start=down["version"]):
        r = await client.patch(
            url, json=change, headers=fhir(auth, clinic, **{"If-Match": f'W/"{version}"'})
        )
        t = answer(r, 200, "Task")
        assert (t["status"], t["businessStatus"]["coding"][0]["code"]) == (status, state)
    assert (await api.get(clinic, down)).json()["status"] == "in_follow_up"
    # a down-referral is sent through /v1 (its stability attestation and plans have no
    # FHIR element here): the create names the category
    body = service_request(
        category=[
            {"coding": [{"system": CS + "care-type", "code": "outpatient"}]},
            {"coding": [{"system": CS + "referral-direction", "code": "down"}]},
        ]
    )
    refused = await client.post(
        "/fhir/ServiceRequest",
        json=body,
        headers={**fhir(auth, "demo hospital HZ-FPH"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert expressions(outcome(refused, 422)) == ["ServiceRequest.category[1]"]


HOSTILE: tuple[Any, ...] = ("ab\x00cd", 10**23, -1.5, True, [], {}, None, ["x"], {"a": 1}, "")


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every element path of a JSON document, the document itself excluded."""
    found = [path] if path else []
    if isinstance(node, dict):
        for k, v in node.items():
            found += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _paths(v, (*path, i))
    return found


def _replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    import copy

    out = copy.deepcopy(doc)
    node = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


async def test_hostile_values_in_every_element_never_give_500(client, auth, app) -> None:
    """Each element of a valid ServiceRequest, transaction, Task change and $accept, replaced
    by hostile values: an OperationOutcome 4xx (or the create) every time, never a 500, and
    the NUL character never echoed."""
    task = answer(await create(client, auth), 201, "Task")
    bodies: list[tuple[str, str, Any]] = [
        ("POST", "/fhir/ServiceRequest", service_request()),
        ("POST", "/fhir", transaction()),
        (
            "PATCH",
            f"/fhir/Task/{task['id']}",
            {
                "status": "rejected",
                "statusReason": {
                    "coding": [{"system": CS + "reject-reason", "code": "other"}],
                    "text": "x",
                },
            },
        ),
        (
            "POST",
            f"/fhir/Task/{task['id']}/$accept",
            parameters(
                ward=("valueString", "w"),
                appointment=("valueDateTime", "2030-01-01T08:00:00+08:00"),
            ),
        ),
        (
            "POST",
            "/fhir/Observation",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": CS + "milestone", "code": "door"}]},
                "effectiveDateTime": "2026-01-01T00:00:00+08:00",
                "basedOn": [{"reference": f"ServiceRequest/{task['id']}"}],
            },
        ),
    ]
    sent = 0
    for method, url, body in bodies:
        who = HOSPITAL if "/Task/" in url or "Observation" in url else CLINIC
        for path in _paths(body):
            for value in HOSTILE:
                r = await client.request(
                    method,
                    url,
                    json=_replaced(body, path, value),
                    headers=fhir(
                        auth, who, **{"If-Match": 'W/"99"', "Idempotency-Key": uuid.uuid4().hex}
                    ),
                )
                sent += 1
                assert r.status_code < 500, (method, url, path, repr(value), r.text[:300])
                if r.status_code >= 400:
                    outcome(r, r.status_code)
                    assert "\\u0000" not in r.text and "\x00" not in r.text
    assert sent > 500


async def test_every_error_under_fhir_is_an_operation_outcome(client, auth) -> None:
    """Whoever decides the error (router, body limit, NUL guard, handlers), /fhir answers an
    OperationOutcome with the status /v1 gives."""
    h = fhir(auth, CLINIC)
    unknown = await client.get("/fhir/Patient/1", headers=h)
    assert outcome(unknown, 404)["issue"][0]["code"] == "not-found"
    wrong_method = await client.delete("/fhir/Task/x", headers=h)
    assert outcome(wrong_method, 405)["issue"][0]["code"] == "not-supported"
    assert "PATCH" in wrong_method.headers["allow"]
    big = service_request(note=[{"text": "x" * (1024 * 1024)}])
    too_large = await client.post(
        "/fhir/ServiceRequest", json=big, headers={**h, "Idempotency-Key": uuid.uuid4().hex}
    )
    assert outcome(too_large, 413)["issue"][0]["code"] == "too-long"
    nul = await client.get("/fhir/Organization", params={"name": "a\x00b"}, headers=h)
    o = outcome(nul, 422)
    assert expressions(o) == ["query.name"]
    assert o["issue"][0]["details"]["coding"][1]["code"] == "string_nul"
    assert "\x00" not in nul.text and "\\u0000" not in nul.text


async def test_a_remote_read_is_read_as_service_request_and_task(client, auth, api) -> None:
    """A remote read (/v1) under /fhir: its ServiceRequest names the kind, its Task is
    requested at the reader and completed once reported (businessStatus reported)."""
    from tests.integration.test_remote_services import _post, _readers, read_body

    ids = await _readers(client, auth, api)
    created = (await _post(client, auth, CLINIC, "/v1/remote-requests", read_body())).json()
    h = fhir(auth, CLINIC)
    sr = answer(await client.get(f"/fhir/ServiceRequest/{created['id']}", headers=h), 200)
    kind = {"system": CS + "referral-kind", "code": "remote_read"}
    assert sr["code"]["coding"] == [kind]
    assert kind in [c for cat in sr["category"] for c in cat["coding"]]
    task = answer(await client.get(f"/fhir/Task/{created['id']}", headers=h), 200)
    assert task["status"] == "requested"
    assert task["owner"]["reference"] == f"Organization/{ids['ZH-CH']}"
    report = {"conclusion": "窦性心律", "reader": {"name": "李医师"}}
    await api.act(HOSPITAL, created, "report", report)
    task = answer(await client.get(f"/fhir/Task/{created['id']}", headers=h), 200)
    assert task["status"] == "completed"
    assert task["businessStatus"]["coding"][0]["code"] == "reported"
    found = await pages(client, "/fhir/Task?status=completed", fhir(auth, HOSPITAL))
    assert created["id"] in {t["id"] for t in found}
