"""One council writes its own consortium's data only: pathway targets, upstream partners."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.factories import STROKE

DNT_45 = [
    {
        "code": "door_to_needle",
        "name": "DNT",
        "from": "door",
        "to": "treatment_start",
        "minutes": 45,
    }
]
DNT_30 = [{**DNT_45[0], "minutes": 30}]
HZ1 = "demo council HUANGZHONG-1"
ZHENGHE = "demo council ZHENGHE"


async def _consortia(client: Any, auth: Any) -> dict[str, str]:
    r = await client.get("/v1/consortia", headers=auth("demo admin"))
    return {c["code"]: c["id"] for c in r.json()["items"]}


def _stroke_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return next(p for p in rows if p["code"] == "stroke")


async def test_council_cannot_patch_other_consortium_targets(client, auth) -> None:
    consortia = await _consortia(client, auth)
    defaults = _stroke_of((await client.get("/v1/pathways", headers=auth("demo admin"))).json())
    r = await client.patch("/v1/pathways/stroke", json={"targets": DNT_45}, headers=auth(HZ1))
    assert r.status_code == 200, r.text
    own = r.json()
    assert own["consortium_id"] == consortia["HUANGZHONG-1"]
    assert own["version"] == defaults["version"] + 1
    # the change is HUANGZHONG-1's only: other councils and the shared defaults are untouched
    other = _stroke_of((await client.get("/v1/pathways", headers=auth(ZHENGHE))).json())
    assert other["targets"] == defaults["targets"] and other["consortium_id"] is None
    shared = _stroke_of((await client.get("/v1/pathways", headers=auth("demo admin"))).json())
    assert shared == defaults
    mine = _stroke_of((await client.get("/v1/pathways", headers=auth(HZ1))).json())
    assert mine["targets"] == DNT_45
    # naming another consortium does not help a council, neither to write nor to read
    for method, kwargs in (("PATCH", {"json": {"targets": DNT_30}}), ("GET", {})):
        path = "/v1/pathways/stroke" if method == "PATCH" else "/v1/pathways"
        r = await client.request(
            method,
            path,
            params={"consortium": consortia["ZHENGHE"]},
            headers=auth(HZ1),
            **kwargs,
        )
        assert r.status_code == 403, (method, r.text)
    other = _stroke_of((await client.get("/v1/pathways", headers=auth(ZHENGHE))).json())
    assert other["targets"] == defaults["targets"]


async def test_referrals_keep_their_own_consortiums_targets(api, client, auth) -> None:
    r = await client.patch("/v1/pathways/stroke", json={"targets": DNT_45}, headers=auth(HZ1))
    assert r.status_code == 200
    for code in ("ZH-CH",):
        await api.set_beds(
            code, {"03": (10, 1)}, as_of=datetime(2026, 1, 1, tzinfo=UTC), expect=None
        )
    hz = (await api.create("demo clinic HZ-THC-XB", **STROKE)).json()
    zh = (await api.create("demo clinic ZH-THC-TS", **STROKE)).json()
    hz_view = await client.get(
        f"/v1/referrals/{hz['id']}/milestones", headers=auth("demo clinic HZ-THC-XB")
    )
    zh_view = await client.get(
        f"/v1/referrals/{zh['id']}/milestones", headers=auth("demo clinic ZH-THC-TS")
    )
    assert [t["target_minutes"] for t in hz_view.json()["targets"]] == [45]
    assert 45 not in [t["target_minutes"] for t in zh_view.json()["targets"]]


async def test_admin_changes_shared_defaults_or_a_named_consortiums(client, auth) -> None:
    consortia = await _consortia(client, auth)
    admin = auth("demo admin")
    r = await client.patch(
        "/v1/pathways/stroke",
        params={"consortium": consortia["ZHENGHE"]},
        json={"targets": DNT_30},
        headers=admin,
    )
    assert r.status_code == 200 and r.json()["consortium_id"] == consortia["ZHENGHE"]
    zh = _stroke_of((await client.get("/v1/pathways", headers=auth(ZHENGHE))).json())
    assert zh["targets"] == DNT_30
    r = await client.patch("/v1/pathways/stroke", json={"targets": DNT_45}, headers=admin)
    assert r.status_code == 200 and r.json()["consortium_id"] is None
    hz = _stroke_of((await client.get("/v1/pathways", headers=auth(HZ1))).json())
    assert hz["targets"] == DNT_45  # no own targets: the new defaults
    zh = _stroke_of((await client.get("/v1/pathways", headers=auth(ZHENGHE))).json())
    assert zh["targets"] == DNT_30  # its own stay
    missing = await client.patch(
        "/v1/pathways/stroke",
        params={"consortium": "no-such-consortium"},
        json={"targets": DNT_30},
        headers=admin,
    )
    assert missing.status_code == 404


async def test_council_cannot_name_another_consortiums_member_as_upstream_partner(
    api, client, auth
) -> None:
    consortia = await _consortia(client, auth)
    ids = await api.ids()
    path = f"/v1/consortia/{consortia['HUANGZHONG-1']}"
    before = (await client.get(path, headers=auth("demo admin"))).json()["upstream_partner_ids"]
    r = await client.patch(path, json={"upstream_partner_ids": [ids["ZH-CH"]]}, headers=auth(HZ1))
    assert r.status_code == 403, r.text
    after = (await client.get(path, headers=auth("demo admin"))).json()["upstream_partner_ids"]
    assert after == before
    # an unaffiliated partner (the provincial hospital) is fine for the council
    r = await client.patch(path, json={"upstream_partner_ids": [ids["QH-PPH"]]}, headers=auth(HZ1))
    assert r.status_code == 200, r.text
    # an admin may name another consortium's member
    r = await client.patch(
        path, json={"upstream_partner_ids": [ids["ZH-CH"]]}, headers=auth("demo admin")
    )
    assert r.status_code == 200 and r.json()["upstream_partner_ids"] == [ids["ZH-CH"]]


def test_migration_keeps_existing_pathway_versions_as_the_shared_defaults(tmp_path) -> None:
    import json
    import sqlite3

    from app.db import migrate as migrations

    path = tmp_path / "m.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrations.upgrade(url, "0008")
    with sqlite3.connect(path) as conn:  # a council had changed the (then global) targets
        conn.execute(
            "INSERT INTO pathway (code, name, centre, specialties, targets, version, updated_at)"
            " VALUES ('stroke', 'Stroke', 'stroke', '[\"03.03\"]', ?, 3, '2026-11-01 00:00:00')",
            (json.dumps(DNT_45),),
        )
    migrations.upgrade(url)
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT targets, version FROM pathway WHERE code = 'stroke'").fetchone()
    assert (json.loads(row[0]), row[1]) == (DNT_45, 3)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM pathway_target").fetchone() == (0,)
    migrations.downgrade(url, "0008")
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT version FROM pathway WHERE code = 'stroke'").fetchone()
    assert row == (3,)
