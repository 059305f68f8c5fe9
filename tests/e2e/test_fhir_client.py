"""A FHIR client library (fhirpy, async) drives the service on a real uvicorn process:
registry search, a referral created, its Task read and accepted, the worklist searched and
paged. Every answer is parsed with the FHIR R4 models of tests/fhir_support.py; every body
sent is built with them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import MultipleResourcesFound

from tests.e2e.server import Server, cli, free_port, start
from tests.fhir_support import CS, parameters, r4, service_request

pytestmark = pytest.mark.slow

CLINIC = "demo clinic ZH-THC-TS"
HOSPITAL = "demo hospital ZH-CH"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("fhir-e2e")
    keys_file = tmp / "keys.json"
    server = start(
        cli("serve", "--demo"),
        {
            "REFERRAL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'demo.db'}",
            "REFERRAL_DEMO_KEYS_FILE": str(keys_file),
        },
        tmp / "server.log",
        port=free_port(),
    )
    try:
        keys = {k["name"]: k["key"] for k in json.loads(keys_file.read_text("utf-8"))["keys"]}
        yield server, keys
    finally:
        server.stop()


def fhir_client(served: tuple[Server, dict[str, str]], who: str, **headers: str) -> AsyncFHIRClient:
    server, keys = served
    return AsyncFHIRClient(
        f"{server.base_url}/fhir",
        authorization=f"Bearer {keys[who]}",
        extra_headers={"Accept": "application/fhir+json", **headers},
    )


def plain(resource: Any) -> dict[str, Any]:
    data = resource.serialize() if hasattr(resource, "serialize") else dict(resource)
    return r4(json.loads(json.dumps(data)))


async def test_fhir_client_drives_a_referral_through_the_service(served) -> None:
    server, keys = served
    clinic = fhir_client(served, CLINIC)

    # registry search, paged by the client through the Bundles' next links
    members = (
        await clinic.resources("Organization").search(consortium="ZHENGHE").limit(4).fetch_all()
    )
    codes = {
        i["value"]
        for o in map(plain, members)
        for i in o["identifier"]
        if i["system"].endswith("/institution-code")
    }
    v1 = httpx.get(
        f"{server.base_url}/v1/institutions",
        params={"consortium": "ZHENGHE", "limit": 200},
        headers={"Authorization": f"Bearer {keys[CLINIC]}"},
    ).json()["items"]
    assert codes == {i["code"] for i in v1} and len(members) == len(v1) > 4
    hospital_id = next(i["id"] for i in v1 if i["code"] == "ZH-CH")
    stroke = await clinic.resources("HealthcareService").search(characteristic="stroke").fetch_all()
    assert hospital_id in {plain(s)["id"] for s in stroke}
    location = plain(await clinic.reference("Location", hospital_id).to_resource())
    assert location["managingOrganization"]["reference"] == f"Organization/{hospital_id}"

    # create three referrals; each answer is the Task routing produced
    created = []
    for n in range(3):
        sender = fhir_client(served, CLINIC, **{"Idempotency-Key": f"e2e-fhir-{n}"})
        created.append(
            plain(await sender.execute("ServiceRequest", method="post", data=service_request()))
        )
    task = created[0]
    assert task["resourceType"] == "Task" and task["status"] == "requested"
    assert task["owner"]["reference"] == f"Organization/{hospital_id}"

    # the hospital reads the Task and the ServiceRequest
    hospital = fhir_client(served, HOSPITAL)
    read = plain(await hospital.reference("Task", task["id"]).to_resource())
    assert read["businessStatus"]["coding"][0] == {
        "system": CS + "referral-status",
        "code": "pending",
    }
    request = plain(await hospital.reference("ServiceRequest", task["id"]).to_resource())
    assert request["performer"] == [{"reference": f"Organization/{hospital_id}"}]

    # accept: a stale version is refused, the current one is taken
    stale = fhir_client(served, HOSPITAL, **{"If-Match": 'W/"9"'})
    with pytest.raises(MultipleResourcesFound) as refused:  # fhirpy's name for any 412
        await stale.resource("Task", id=task["id"]).patch(status="accepted")
    problem = r4(json.loads(str(refused.value)))
    assert problem["issue"][0]["details"]["coding"][0]["code"] == "precondition-failed"
    current = fhir_client(served, HOSPITAL, **{"If-Match": f'W/"{read["meta"]["versionId"]}"'})
    accepted = plain(await current.resource("Task", id=task["id"]).patch(status="accepted"))
    assert accepted["status"] == "accepted" and accepted["meta"]["versionId"] == "2"
    second = fhir_client(served, HOSPITAL, **{"If-Match": 'W/"1"'})
    via_operation = plain(
        await second.execute(
            f"Task/{created[1]['id']}/$accept",
            method="post",
            data=parameters(ward=("valueString", "神经内科一病区")),
        )
    )
    assert via_operation["status"] == "accepted"

    # the worklist: what is still waiting for the hospital, one per page
    waiting = await (
        hospital.resources("Task")
        .search(owner=f"Organization/{hospital_id}", status="requested")
        .sort("priority")
        .limit(1)
        .fetch_all()
    )
    ids = [plain(t)["id"] for t in waiting]
    assert created[2]["id"] in ids and task["id"] not in ids and created[1]["id"] not in ids
    assert len(ids) == len(set(ids))
    done = await hospital.resources("Task").search(status="accepted").limit(1).fetch_all()
    assert {task["id"], created[1]["id"]} <= {plain(t)["id"] for t in done}
