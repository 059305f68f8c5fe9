"""The council's bed board (daily workflows #10): every member × specialty in one call, with
total, occupied, held, free, overflow, stale and as_of, as JSON and CSV, for the council of the
consortium and admins only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from app.db.models import BedCapacity

CLINIC = "demo clinic ZH-THC-TS"


async def test_the_board_shows_every_member_and_specialty(api, client, auth, app) -> None:
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (40, 30), "04": (20, 20)})
    await api.set_beds("ZH-TCM", {"03": (10, 2)})
    async with app.state.database.unit_of_work() as session:  # ZH-TCM's census is two days old
        await session.execute(
            update(BedCapacity)
            .where(BedCapacity.institution_id == ids["ZH-TCM"])
            .values(as_of=datetime.now(UTC) - timedelta(days=2))
        )
    await api.create(CLINIC)  # holds a ZH-CH 03 bed
    r = await client.get("/v1/consortia/ZHENGHE/bed-board", headers=auth("demo council ZHENGHE"))
    assert r.status_code == 200, r.text
    board = r.json()
    rows = {(i["institution_code"], i["kind"], i["specialty_code"]): i for i in board["items"]}
    ch = rows[("ZH-CH", "beds", "03")]
    assert (ch["total"], ch["occupied"], ch["held"], ch["free"]) == (40, 30, 1, 9)
    assert ch["stale"] is False and ch["as_of"] is not None
    full = rows[("ZH-CH", "beds", "04")]
    assert full["free"] == 0
    assert rows[("ZH-TCM", "beds", "03")]["stale"] is True  # two days old
    assert {code for code, _, _ in rows} <= {
        i["code"]
        for i in (
            await client.get(
                "/v1/institutions",
                params={"consortium": "ZHENGHE", "limit": 200},
                headers=auth("demo admin"),
            )
        ).json()["items"]
    }
    assert not any(code.startswith("HZ-") for code, _, _ in rows)  # its own members only
    csv = await client.get(
        "/v1/consortia/ZHENGHE/bed-board",
        headers={**auth("demo council ZHENGHE"), "Accept": "text/csv"},
    )
    assert csv.status_code == 200 and csv.content.startswith("\ufeff".encode())
    header, *lines = csv.text.lstrip("\ufeff").splitlines()
    columns = header.split(",")
    parsed = [dict(zip(columns, line.split(","), strict=True)) for line in lines]
    mine = next(
        r for r in parsed if r["institution_code"] == "ZH-CH" and r["specialty_code"] == "03"
    )
    assert (mine["institution_name"], mine["kind"], mine["held"]) == ("政和县医院", "beds", "1")
    assert len(parsed) == len(board["items"])
    for who in ("demo council HUANGZHONG-1", CLINIC, "demo hospital ZH-CH", "demo insurer"):
        refused = await client.get("/v1/consortia/ZHENGHE/bed-board", headers=auth(who))
        assert refused.status_code == 403, who
    admin = await client.get("/v1/consortia/ZHENGHE/bed-board", headers=auth("demo admin"))
    assert admin.status_code == 200 and len(admin.json()["items"]) == len(board["items"])
