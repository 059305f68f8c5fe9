from __future__ import annotations

from typing import Any

import httpx

PROBLEM = "application/problem+json"


async def _consortium(client: httpx.AsyncClient, h: dict[str, str], code: str) -> dict[str, Any]:
    r = await client.get("/v1/consortia", headers=h)
    assert r.status_code == 200
    return next(c for c in r.json()["items"] if c["code"] == code)


async def _members(client: httpx.AsyncClient, h: dict[str, str], cid: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"consortium": cid, "limit": 7}
        if cursor:
            params["cursor"] = cursor
        r = await client.get("/v1/institutions", params=params, headers=h)
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            return items


async def test_demo_consortia_list_members_with_levels(client, auth) -> None:
    h = auth("demo clinic ZH-THC-TS")
    zhenghe = await _consortium(client, h, "ZHENGHE")
    members = await _members(client, h, zhenghe["id"])
    by_code = {m["code"]: m for m in members}
    assert len(by_code) == len(members)  # paging returned no duplicates
    lead = by_code["ZH-CH"]
    assert lead["is_lead"] and lead["level"] == "secondary"
    assert zhenghe["lead_institution_id"] == lead["id"]
    own = [m for m in members if m["consortium_id"] == zhenghe["id"]]
    assert sum(m["level"] == "primary" for m in own) == 10  # 8 township + 2 community centres
    assert {m["level"] for m in own} == {"village", "primary", "secondary"}
    partners = [m for m in members if m["id"] in zhenghe["upstream_partner_ids"]]
    assert partners and all(p["level"] == "tertiary" for p in partners)

    hz1 = await _consortium(client, h, "HUANGZHONG-1")
    hz_members = await _members(client, h, hz1["id"])
    names = " ".join(m["name_en"] or "" for m in hz_members)
    for town in ("Xinzhuang", "Tianjiazhai", "Xibao", "Tumenguan", "Ganheitan", "Qunjia"):
        assert town in names


async def test_specialties_catalogue(client, auth) -> None:
    r = await client.get("/v1/specialties", headers=auth("demo insurer"))
    assert r.status_code == 200
    codes = {s["code"]: s for s in r.json()}
    assert codes["03.04"]["parent_code"] == "03"
    assert {"02", "03", "04", "05", "07", "20", "21", "28", "50", "51"} <= set(codes)


async def test_no_key_and_bad_key_are_401_problems(client, auth) -> None:
    for headers in ({}, {"Authorization": "Bearer rsk_nope_nope"}, {"X-API-Key": "garbage"}):
        r = await client.get("/v1/institutions", headers=headers)
        assert r.status_code == 401
        assert r.headers["content-type"] == PROBLEM
        body = r.json()
        assert body["type"].endswith("/unauthorized") and body["status"] == 401
        assert body["request_id"] == r.headers["x-request-id"]
    ok = await client.get(
        "/v1/institutions", headers={"X-API-Key": auth("demo admin")["Authorization"].split()[1]}
    )
    assert ok.status_code == 200


async def test_unknown_id_is_404_problem(client, auth) -> None:
    for path in ("/v1/institutions/nope", "/v1/consortia/nope"):
        r = await client.get(path, headers=auth("demo admin"))
        assert r.status_code == 404
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["type"].endswith("/not-found")


async def test_create_institution_roles_and_validation(client, auth) -> None:
    admin = auth("demo admin")
    zhenghe = await _consortium(client, admin, "ZHENGHE")
    body = {
        "code": "ZH-NEW-1",
        "name": "测试卫生院",
        "level": "primary",
        "type": "general",
        "consortium_id": zhenghe["id"],
        "specialties": ["02", "03"],
        "location": {"lat": 27.3, "lon": 118.8, "approximate": True},
    }
    # a clinic may not write the registry
    r = await client.post("/v1/institutions", json=body, headers=auth("demo clinic ZH-THC-TS"))
    assert r.status_code == 403 and r.headers["content-type"] == PROBLEM
    # another consortium's council may not either
    r = await client.post("/v1/institutions", json=body, headers=auth("demo council HUANGZHONG-1"))
    assert r.status_code == 403
    # unknown specialty, unknown field, bad enum: 422 naming the field, nothing written
    bad = [
        ({**body, "specialties": ["99.99"]}, "specialties"),
        ({**body, "is_lead": True}, "is_lead"),
        ({**body, "level": "galactic"}, "level"),
    ]
    for payload, field in bad:
        r = await client.post("/v1/institutions", json=payload, headers=admin)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == PROBLEM
        assert any(field in [str(p) for p in e["loc"]] for e in r.json()["errors"])
    r = await client.get("/v1/institutions", params={"q": "ZH-NEW-1"}, headers=admin)
    assert r.json()["items"] == []
    # the consortium's own council may
    r = await client.post("/v1/institutions", json=body, headers=auth("demo council ZHENGHE"))
    assert r.status_code == 201, r.text
    created = r.json()
    assert r.headers["location"] == f"/v1/institutions/{created['id']}"
    assert created["specialties"] == ["02", "03"] and created["is_lead"] is False
    # the same code again is refused
    r = await client.post("/v1/institutions", json=body, headers=admin)
    assert r.status_code == 422


async def test_patch_institution_and_consortium(client, auth) -> None:
    council = auth("demo council ZHENGHE")
    zhenghe = await _consortium(client, council, "ZHENGHE")
    members = await _members(client, council, zhenghe["id"])
    clinic = next(m for m in members if m["code"] == "ZH-THC-TS")
    r = await client.patch(
        f"/v1/institutions/{clinic['id']}",
        json={"active": False, "centres": [], "contact": {"name": "转诊办", "phone": "0599-1"}},
        headers=council,
    )
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False and r.json()["contact"]["name"] == "转诊办"
    r = await client.patch(f"/v1/institutions/{clinic['id']}", json={"name": None}, headers=council)
    assert r.status_code == 422
    r = await client.patch(
        f"/v1/institutions/{clinic['id']}",
        json={"active": True},
        headers=auth("demo council HUANGZHONG-1"),
    )
    assert r.status_code == 403
    # lead must be a member
    hz1 = await _consortium(client, council, "HUANGZHONG-1")
    r = await client.patch(
        f"/v1/consortia/{zhenghe['id']}",
        json={"lead_institution_id": hz1["lead_institution_id"]},
        headers=council,
    )
    assert r.status_code == 422
    tcm = next(m for m in members if m["code"] == "ZH-TCM")
    r = await client.patch(
        f"/v1/consortia/{zhenghe['id']}", json={"lead_institution_id": tcm["id"]}, headers=council
    )
    assert r.status_code == 200 and r.json()["lead_institution_id"] == tcm["id"]
    again = await client.get(f"/v1/institutions/{tcm['id']}", headers=council)
    assert again.json()["is_lead"] is True


async def test_create_consortium_admin_only(client, auth) -> None:
    body = {
        "code": "TEST-C",
        "name": "测试医联体",
        "kind": "urban_medical_group",
        "referral_prefix": "TST",
    }
    r = await client.post("/v1/consortia", json=body, headers=auth("demo council ZHENGHE"))
    assert r.status_code == 403
    r = await client.post("/v1/consortia", json=body, headers=auth("demo admin"))
    assert r.status_code == 201, r.text
    assert r.json()["lead_institution_id"] is None
    r = await client.post(
        "/v1/consortia", json={**body, "code": "TEST-D"}, headers=auth("demo admin")
    )
    assert r.status_code == 422  # prefix in use


async def test_paging_limits(client, auth) -> None:
    h = auth("demo admin")
    r = await client.get("/v1/institutions", params={"limit": 201}, headers=h)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    r = await client.get("/v1/institutions", params={"cursor": "%%%"}, headers=h)
    assert r.status_code == 422
