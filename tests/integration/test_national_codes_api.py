"""National code sets at the API: 险种类型 codes, institution identifiers and grade, filters."""

from __future__ import annotations

import uuid

from tests.factories import referral_body

PROBLEM = "application/problem+json"


def _uscc(first17: str) -> str:
    from app.domain.national_codes import uscc_check_character

    return first17 + uscc_check_character(first17)


async def _zhenghe_id(client, h) -> str:
    r = await client.get("/v1/consortia", headers=h)
    return next(c["id"] for c in r.json()["items"] if c["code"] == "ZHENGHE")


async def test_consortium_filter_takes_the_code(client, auth) -> None:
    h = auth("demo admin")
    by_code = await client.get("/v1/institutions", params={"consortium": "ZHENGHE"}, headers=h)
    by_id = await client.get(
        "/v1/institutions", params={"consortium": await _zhenghe_id(client, h)}, headers=h
    )
    assert by_code.status_code == 200 and by_code.json()["items"]
    assert by_code.json()["items"] == by_id.json()["items"]


async def test_scheme_old_word_stored_as_code_with_name(client, auth) -> None:
    h = auth("demo clinic ZH-THC-TS")
    for sent, code in (("urban_rural_resident", "390"), ("310", "310")):
        body = referral_body()
        body["patient"]["insurance_scheme"] = sent
        r = await client.post(
            "/v1/referrals", json=body, headers={**h, "Idempotency-Key": uuid.uuid4().hex}
        )
        assert r.status_code == 201, r.text
        assert r.json()["insurance_scheme"] == code
        assert r.json()["insurance_scheme_name"] in ("城乡居民基本医疗保险", "职工基本医疗保险")
    body = referral_body()
    body["patient"]["insurance_scheme"] = "999"
    r = await client.post(
        "/v1/referrals", json=body, headers={**h, "Idempotency-Key": uuid.uuid4().hex}
    )
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert any("insurance_scheme" in [str(p) for p in e["loc"]] for e in r.json()["errors"])


async def test_institution_identifiers_and_grade(client, auth) -> None:
    admin = auth("demo admin")
    uscc = _uscc("12350700MB0000001")
    body = {
        "code": "ZH-NAT-1",
        "name": "测试医院",
        "level": "secondary",
        "grade": "二级甲等",
        "type": "general",
        "consortium_id": await _zhenghe_id(client, admin),
        "uscc": uscc,
        "licence_number": "PDY00001X35072512A1001",
        "insurance_code": "H35072500001",
    }
    bad = [
        ({**body, "uscc": uscc[:17] + ("0" if uscc[17] != "0" else "1")}, "uscc"),
        ({**body, "licence_number": "short"}, "licence_number"),
        ({**body, "insurance_code": "X35072500001"}, "insurance_code"),
        ({**body, "grade": "3A"}, "grade"),  # 三级 does not fit a secondary level
    ]
    for payload, field in bad:
        r = await client.post("/v1/institutions", json=payload, headers=admin)
        assert r.status_code == 422, (field, r.text)
        assert r.headers["content-type"] == PROBLEM
        assert any(field in [str(p) for p in e["loc"]] for e in r.json()["errors"])
        assert str(payload[field]) not in r.text
    r = await client.post("/v1/institutions", json=body, headers=admin)
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["grade"], out["grade_name"]) == ("2A", "二级甲等")
    assert out["uscc"] == uscc and out["insurance_code"] == "H35072500001"
    # unique when given: a second institution may not take the same designated code
    r = await client.post(
        "/v1/institutions",
        json={**body, "code": "ZH-NAT-2", "uscc": None, "licence_number": None},
        headers=admin,
    )
    assert r.status_code == 422
    assert any("insurance_code" in [str(p) for p in e["loc"]] for e in r.json()["errors"])
    # several institutions without identifiers are fine
    for code in ("ZH-NAT-3", "ZH-NAT-4"):
        plain = {
            k: v for k, v in body.items() if k not in ("uscc", "licence_number", "insurance_code")
        }
        r = await client.post("/v1/institutions", json={**plain, "code": code}, headers=admin)
        assert r.status_code == 201, r.text


async def test_openapi_describes_the_code_sets(client) -> None:
    doc = (await client.get("/openapi.json")).json()
    text = str(doc)
    assert "insutype" in text and "GB 32100" in text and "H + region" in text


def test_migration_converts_stored_policy_terms_and_back(tmp_path) -> None:
    import asyncio
    import json

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.db import migrate as migrations

    url = f"sqlite+aiosqlite:///{tmp_path / 'n.db'}"
    migrations.upgrade(url, "0008")
    doc = {"code": "P", "terms": {"employee_basic": {}, "urban_rural_resident": {}}}

    async def sql(stmt: str, **params: object) -> object:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(text(stmt), params)
                return result.scalar() if result.returns_rows else None
        finally:
            await engine.dispose()

    asyncio.run(
        sql(
            "INSERT INTO reimbursement_policy (id, code, version, effective_from, is_example,"
            " document, created_at) VALUES ('p1', 'P', 1, '2026-01-01', 1, :d,"
            " '2026-01-01 00:00:00+00:00')",
            d=json.dumps(doc),
        )
    )
    migrations.upgrade(url)
    stored = json.loads(str(asyncio.run(sql("SELECT document FROM reimbursement_policy"))))
    assert set(stored["terms"]) == {"310", "390"}
    migrations.downgrade(url, "0008")
    stored = json.loads(str(asyncio.run(sql("SELECT document FROM reimbursement_policy"))))
    assert set(stored["terms"]) == {"employee_basic", "urban_rural_resident"}
