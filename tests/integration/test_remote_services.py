"""Remote consultation and remote reading: a township ECG read by the county hospital within
its target, an unanswered read routed on to the next reader, a consult converted into a
referral in the same episode, and the figures (on both back ends)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from app.db.models import Referral
from app.services.sweeper import sweep_once
from tests.factories import referral_body

CLINIC = "demo clinic ZH-THC-TS"
COUNTY = "demo hospital ZH-CH"
TCM = "demo hospital ZH-TCM"
ADMIN = "demo admin"


def read_body(**overrides: Any) -> dict[str, Any]:
    base = referral_body()
    body: dict[str, Any] = {
        "kind": "remote_read",
        "modality": "ECG",
        "urgency": "emergency",
        "patient": base["patient"],
        "diagnosis": {"icd10": "I20.0", "text": "不稳定型心绞痛（测试）"},
        "question": "ST 段改变？",
        "study": {
            "accession_number": "TS-ECG-0001",
            "study_instance_uid": "1.2.840.113619.2.55.3.1234",
        },
        "referring_doctor": {"name": "王医生", "id": "doc-1"},
    }
    body.update(overrides)
    return body


async def _offer(client, auth, code: str, ids, services, slots: dict[str, int]) -> None:
    r = await client.put(
        f"/v1/institutions/{ids[code]}/remote-services",
        json={"services": services},
        headers=auth(ADMIN),
    )
    assert r.status_code == 200, r.text
    day = await _today(client, auth)
    capacity = [
        {"kind": kind, "specialty_code": spec, "day": day, "total": n, "occupied": 0}
        for key, n in slots.items()
        for kind, spec in [key.split(":")]
    ]
    r = await client.put(
        f"/v1/institutions/{ids[code]}/remote-capacity",
        json={"as_of": datetime.now(UTC).isoformat(), "capacity": capacity},
        headers=auth(ADMIN),
    )
    assert r.status_code == 200, r.text


async def _today(client, auth) -> str:
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()


async def _slot(client, auth, institution_id: str, kind: str = "remote_read", code: str = "32.06"):
    """Today's read (or consult) slot of the member, as its capacity lists it."""
    day = await _today(client, auth)
    r = await client.get(f"/v1/institutions/{institution_id}/remote-capacity", headers=auth(ADMIN))
    assert r.status_code == 200, r.text
    return next(
        c
        for c in r.json()["items"]
        if (c["kind"], c["specialty_code"], c["day"]) == (kind, code, day)
    )


async def _post(client, auth, who: str, path: str, body: dict[str, Any], expect: int = 201):
    r = await client.post(
        path, json=body, headers={**auth(who), "Idempotency-Key": str(uuid.uuid4())}
    )
    assert r.status_code == expect, r.text
    return r


async def _readers(client, auth, api) -> dict[str, str]:
    ids = await api.ids()
    ecg = [{"kind": "remote_read", "specialty_code": "32.06"}]
    await _offer(client, auth, "ZH-CH", ids, ecg, {"remote_read:32.06": 5})
    await _offer(client, auth, "ZH-TCM", ids, ecg, {"remote_read:32.06": 5})
    return ids


async def test_township_ecg_read_by_the_county_within_its_target(api, client, auth) -> None:
    ids = await _readers(client, auth, api)
    created = (await _post(client, auth, CLINIC, "/v1/remote-requests", read_body())).json()
    assert created["kind"] == "remote_read" and created["status"] == "pending"
    assert created["target_institution_id"] == ids["ZH-CH"]  # the lead hospital, explained
    assert created["routing"]["target"]["rule"] == "lead_hospital"
    assert created["hold"] == {
        "kind": "read",
        "specialty_code": "32.06",
        "day": await _today(client, auth),
    }
    assert created["tier"] is None  # no patient moves: no reimbursement tier
    remote = created["remote"]
    assert remote["modality"] == "ECG"
    assert remote["study"]["study_instance_uid"] == "1.2.840.113619.2.55.3.1234"
    due = datetime.fromisoformat(remote["report_due_at"]) - datetime.fromisoformat(
        created["created_at"]
    )
    assert due == timedelta(minutes=10)  # an emergency ECG (app/data/service_levels.json)
    answer = datetime.fromisoformat(created["respond_by"]) - datetime.fromisoformat(
        created["created_at"]
    )
    assert answer == timedelta(minutes=3)
    slot = await _slot(client, auth, ids["ZH-CH"])
    assert (slot["held"], slot["free"]) == (1, 4)

    # the reader's worklist: remote reads, most urgent first
    listed = await client.get(
        "/v1/referrals", params={"box": "incoming", "kind": "remote_read"}, headers=auth(COUNTY)
    )
    assert [i["id"] for i in listed.json()["items"]] == [created["id"]]
    assert "report" in listed.json()["items"][0]["allowed_actions"]
    assert "admit" not in str(listed.json()["items"][0]["allowed_actions"])

    report = {
        "conclusion": "窦性心律，II、III、aVF 导联 ST 段抬高，考虑急性下壁心肌梗死",
        "findings": "心率 88 次/分",
        "advice": "立即转诊胸痛中心",
        "recommend_transfer": True,
        "reader": {"name": "李医师", "id": "ecg-7"},
    }
    reported = await api.act(COUNTY, created, "report", report)
    body = reported.json()
    assert body["status"] == "reported"
    assert body["remote"]["report"]["within_target"] is True
    assert body["remote"]["report"]["conclusion"] == report["conclusion"]
    slot = await _slot(client, auth, ids["ZH-CH"])
    assert (slot["held"], slot["occupied"], slot["free"]) == (0, 1, 4)

    # the requesting clinic sees the report: reported in its outgoing list, the text on GET
    out = await client.get(
        "/v1/referrals", params={"box": "outgoing", "kind": "remote_read"}, headers=auth(CLINIC)
    )
    assert out.json()["items"][0]["reported_at"] is not None
    seen = (await api.get(CLINIC, created)).json()
    assert seen["remote"]["report"]["advice"] == "立即转诊胸痛中心"
    events = (
        await client.get(f"/v1/referrals/{created['id']}/events", headers=auth(CLINIC))
    ).json()
    reported_event = next(e for e in events if e["type"] == "reported")
    assert reported_event["reason"] is None  # the report is sealed, never in the audit trail


async def _set(app, referral_id: str, **values: Any) -> None:
    async with app.state.database.unit_of_work() as session:
        await session.execute(update(Referral).where(Referral.id == referral_id).values(**values))


async def test_unanswered_read_is_routed_to_the_next_reader(api, client, auth, app) -> None:
    ids = await _readers(client, auth, api)
    created = (await _post(client, auth, CLINIC, "/v1/remote-requests", read_body())).json()
    assert created["target_institution_id"] == ids["ZH-CH"]
    await _set(app, created["id"], respond_by=datetime.now(UTC) - timedelta(seconds=1))
    assert await sweep_once(app.state.database, app.state.settings) == 1
    after = (await api.get(ADMIN, created)).json()
    assert after["status"] == "pending"
    assert after["target_institution_id"] == ids["ZH-TCM"]  # the next reader, slot held there
    assert after["hold"]["kind"] == "read"
    for code, held in (("ZH-CH", 0), ("ZH-TCM", 1)):
        assert (await _slot(client, auth, ids[code]))["held"] == held, code
    events = [
        e["type"]
        for e in (
            await client.get(f"/v1/referrals/{created['id']}/events", headers=auth(ADMIN))
        ).json()
    ]
    assert events[-2:] == ["expired", "rerouted"]
    # the county no longer sees it; the TCM hospital reports it, late against its target
    gone = await client.get(f"/v1/referrals/{created['id']}", headers=auth(COUNTY))
    assert gone.status_code == 404
    await _set(app, created["id"], report_due_at=datetime.now(UTC) - timedelta(minutes=1))
    after = (await api.get(TCM, created)).json()
    done = await api.act(TCM, after, "report", {"conclusion": "正常", "reader": {"name": "赵"}})
    assert done.json()["remote"]["report"]["within_target"] is False


async def test_no_reader_free_waits_then_a_pushed_slot_takes_it(api, client, auth) -> None:
    ids = await api.ids()
    ecg = [{"kind": "remote_read", "specialty_code": "32.06"}]
    await _offer(client, auth, "ZH-CH", ids, ecg, {"remote_read:32.06": 0})
    created = (await _post(client, auth, CLINIC, "/v1/remote-requests", read_body())).json()
    assert created["status"] == "waitlisted" and created["target_institution_id"] is None
    excluded = {x["code"]: x["reason"] for x in created["routing"]["excluded"]}
    assert excluded["ZH-CH"] == "no_free_capacity"
    assert excluded["ZH-TCM"] == "specialty_not_offered"
    await _offer(client, auth, "ZH-CH", ids, ecg, {"remote_read:32.06": 2})
    after = (await api.get(CLINIC, created)).json()
    assert after["status"] == "pending" and after["target_institution_id"] == ids["ZH-CH"]


async def test_consult_converted_into_a_referral_in_the_same_episode(api, client, auth) -> None:
    ids = await api.ids()
    cardio = [{"kind": "consult", "specialty_code": "03"}]
    await _offer(client, auth, "ZH-CH", ids, cardio, {"consult:03": 3})
    body = read_body(
        kind="consult",
        modality=None,
        study=None,
        specialty_code="03.04",  # cardiology: the county consults for internal medicine (03)
        consult_mode="video",
        urgency="urgent",
    )
    consult = (await _post(client, auth, CLINIC, "/v1/remote-requests", body)).json()
    assert consult["target_institution_id"] == ids["ZH-CH"]
    assert consult["remote"]["consult_mode"] == "video"
    assert consult["hold"]["specialty_code"] == "03"
    # not before the answer
    early = await _post(
        client,
        auth,
        CLINIC,
        f"/v1/referrals/{consult['id']}/convert",
        {"care_type": "inpatient"},
        expect=409,
    )
    assert early.json()["current_status"] == "pending"
    answer = {
        "conclusion": "建议上转心内科住院",
        "reader": {"name": "陈主任"},
        "recommend_transfer": True,
    }
    await api.act(COUNTY, consult, "report", answer)
    await api.set_beds("ZH-CH", {"03": (20, 1)})
    # only the asking clinic converts
    await _post(
        client,
        auth,
        COUNTY,
        f"/v1/referrals/{consult['id']}/convert",
        {"care_type": "inpatient"},
        expect=403,
    )
    transfer = (
        await _post(
            client,
            auth,
            CLINIC,
            f"/v1/referrals/{consult['id']}/convert",
            {"care_type": "inpatient"},
        )
    ).json()
    assert transfer["kind"] == "transfer" and transfer["direction"] == "up"
    assert transfer["episode_id"] == consult["episode_id"]
    assert transfer["parent_referral_id"] == consult["id"]
    assert transfer["specialty_code"] == "03.04" and transfer["urgency"] == "urgent"
    assert transfer["target_institution_id"] == ids["ZH-CH"]
    assert transfer["tier"] is not None  # the transfer records its reimbursement tier
    assert "建议上转心内科住院" in transfer["clinical_summary"]
    seen = (await api.get(CLINIC, consult)).json()
    assert seen["remote"]["converted_referral_number"] == transfer["number"]
    again = await _post(
        client,
        auth,
        CLINIC,
        f"/v1/referrals/{consult['id']}/convert",
        {"care_type": "inpatient"},
        expect=409,
    )
    assert again.json()["existing_number"] == transfer["number"]
    events = [
        e["type"]
        for e in (
            await client.get(f"/v1/referrals/{consult['id']}/events", headers=auth(CLINIC))
        ).json()
    ]
    assert events[-1] == "converted"


async def test_each_kind_names_what_it_lacks(api, client, auth) -> None:
    before = (await client.get("/v1/referrals", headers=auth(CLINIC))).json()["items"]
    cases = [
        (read_body(modality=None), ["body", "modality"]),
        (read_body(study={"performed_at": None}), ["body", "study"]),
        (read_body(consult_mode="video"), ["body", "consult_mode"]),
        (read_body(kind="consult", modality=None, study=None), ["body", "specialty_code"]),
        (read_body(modality="XR"), ["body", "modality"]),
        (
            read_body(study={"study_instance_uid": "1.2.abc"}),
            ["body", "study", "study_instance_uid"],
        ),
    ]
    for body, loc in cases:
        r = await _post(client, auth, CLINIC, "/v1/remote-requests", body, expect=422)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert loc in [e["loc"] for e in r.json()["errors"]], (loc, r.json())
        assert "1.2.abc" not in r.text and "XR" not in r.text.replace("XR", "", 0)
    after = (await client.get("/v1/referrals", headers=auth(CLINIC))).json()["items"]
    assert len(after) == len(before)  # nothing was created
    await _post(client, auth, ADMIN, "/v1/remote-requests", read_body(), expect=403)


def _pct(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont)."""
    if not values:
        return None
    v = sorted(values)
    pos = (len(v) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return round(v[lo] + (v[hi] - v[lo]) * (pos - lo), 1)


async def test_monthly_figures_equal_counts_from_the_requests(api, client, auth, app) -> None:
    from zoneinfo import ZoneInfo

    ids = await api.ids()
    ecg = [{"kind": "remote_read", "specialty_code": "32.06"}]
    both = [*ecg, {"kind": "consult", "specialty_code": "03"}]
    await _offer(client, auth, "ZH-CH", ids, both, {"remote_read:32.06": 20, "consult:03": 5})
    await _offer(client, auth, "ZH-TCM", ids, ecg, {"remote_read:32.06": 20})
    await api.set_beds("ZH-CH", {"03": (20, 1)})
    zone = ZoneInfo("Asia/Shanghai")
    now = datetime.now(UTC)
    # (kind, minutes before now it was asked, what happens): reported at the county, routed on
    # to the TCM hospital and reported there, left pending, a consult reported and converted
    plan = [
        ("remote_read", 30, "report"),
        ("remote_read", 59, "report"),
        ("remote_read", 90, "report"),  # late against 60 minutes
        ("remote_read", 45, "expire_then_report"),
        ("remote_read", 10, "pending"),
        ("consult", 300, "report_and_convert"),
        ("consult", 1500, "report"),  # late against 24 hours
    ]
    made: list[dict[str, Any]] = []
    for kind, minutes, fate in plan:
        body = read_body(urgency="routine")
        if kind == "consult":
            body = read_body(
                kind="consult", modality=None, study=None, specialty_code="03", urgency="routine"
            )
        ref = (await _post(client, auth, CLINIC, "/v1/remote-requests", body)).json()
        asked = now - timedelta(minutes=minutes)
        target = timedelta(minutes=60 if kind == "remote_read" else 1440)
        await _set(app, ref["id"], created_at=asked, report_due_at=asked + target)
        made.append({"id": ref["id"], "kind": kind, "asked": asked, "fate": fate, "at": []})
    for m in made:
        m["at"].append(ids["ZH-CH"])
        if m["fate"] == "expire_then_report":
            await _set(app, m["id"], respond_by=datetime.now(UTC) - timedelta(seconds=1))
            assert await sweep_once(app.state.database, app.state.settings) == 1
            m["at"].append(ids["ZH-TCM"])
    report = {"conclusion": "结论", "reader": {"name": "李"}, "reported_at": now.isoformat()}
    for m in made:
        if m["fate"] == "pending":
            continue
        reader = TCM if m["fate"] == "expire_then_report" else COUNTY
        ref = (await api.get(reader, {"id": m["id"]})).json()
        await api.act(reader, ref, "report", report)
        m["reader"] = m["at"][-1]
        if m["fate"] == "report_and_convert":
            await _post(
                client,
                auth,
                CLINIC,
                f"/v1/referrals/{m['id']}/convert",
                {"care_type": "inpatient"},
            )

    # independently: per member and local month of the request
    expected: dict[tuple[str, str], dict[str, Any]] = {}

    def cell(member: str, asked: datetime) -> dict[str, Any]:
        month = asked.astimezone(zone).strftime("%Y-%m")
        return expected.setdefault(
            (member, month),
            {
                "received": 0,
                "reads": 0,
                "consults": 0,
                "reported": 0,
                "within": 0,
                "conv": 0,
                "minutes": [],
            },
        )

    for m in made:
        for member in set(m["at"]):
            c = cell(member, m["asked"])
            c["received"] += 1
            c["reads" if m["kind"] == "remote_read" else "consults"] += 1
        if "reader" in m:
            c = cell(m["reader"], m["asked"])
            c["reported"] += 1
            limit = 60 if m["kind"] == "remote_read" else 1440
            minutes = (now - m["asked"]).total_seconds() / 60
            c["within"] += int(minutes <= limit)
            c["conv"] += int(m["fate"] == "report_and_convert")
            c["minutes"].append(minutes)
    local = now.astimezone(zone).date()
    first = (local - timedelta(days=40)).replace(day=1)
    rows = (
        await client.get(
            "/v1/reports/referrals",
            params={"from": first.isoformat(), "to": (local + timedelta(days=1)).isoformat()},
            headers=auth("demo council ZHENGHE"),
        )
    ).json()
    got = {(r["key"], r["month"]): r for r in rows if r["remote_received"] or r["remote_reported"]}
    assert set(got) == set(expected)
    for key, c in expected.items():
        r = got[key]
        assert (r["remote_received"], r["reads_received"], r["consults_received"]) == (
            c["received"],
            c["reads"],
            c["consults"],
        ), key
        assert (r["remote_reported"], r["remote_within_target"], r["remote_converted"]) == (
            c["reported"],
            c["within"],
            c["conv"],
        ), key
        assert r["remote_turnaround_minutes_median"] == _pct(c["minutes"], 0.5), key
        assert r["remote_turnaround_minutes_p90"] == _pct(c["minutes"], 0.9), key
        share = round(c["within"] / c["reported"], 4) if c["reported"] else None
        assert r["remote_within_target_share"] == share, key
    county = [r for k, r in got.items() if k[0] == ids["ZH-CH"]]
    assert sum(r["remote_received"] for r in county) == 7  # every request reached it first
    # the transfer the consult became counts among the transfers, the requests do not
    assert sum(r["up_received"] for r in rows if r["key"] == ids["ZH-CH"]) == 1
    csv = await client.get(
        "/v1/reports/referrals",
        params={"from": first.isoformat(), "to": (local + timedelta(days=1)).isoformat()},
        headers={**auth("demo council ZHENGHE"), "Accept": "text/csv"},
    )
    header = csv.content.decode("utf-8-sig").splitlines()[0].split(",")
    assert {"remote_received", "remote_turnaround_minutes_p90", "remote_converted"} <= set(header)


async def test_referrals_stored_before_survive_the_migration(api, app, db_url) -> None:
    """Down to 0035 (before remote services) and up again: the referral stays, a transfer."""
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.db import migrate as migrations

    ref = (await api.create(CLINIC)).json()
    await app.state.database.engine.dispose()  # the service's connections, before DDL
    await asyncio.to_thread(migrations.downgrade, db_url, "0035")
    await asyncio.to_thread(migrations.upgrade, db_url)
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT number, kind, status FROM referral WHERE id = :id"),
                    {"id": ref["id"]},
                )
            ).one()
    finally:
        await engine.dispose()
    assert tuple(row) == (ref["number"], "transfer", "pending")


async def test_the_demo_county_reads_out_of_the_box(api, client, auth) -> None:
    """The demo consortium files give the county hospitals their remote services and slots."""
    ids = await api.ids()
    offered = (
        await client.get(f"/v1/institutions/{ids['ZH-CH']}/remote-services", headers=auth(CLINIC))
    ).json()["services"]
    assert {"kind": "remote_read", "specialty_code": "32.06"} in offered
    assert {"kind": "consult", "specialty_code": "03"} in offered
    ct = read_body(modality="CT", urgency="routine")
    created = (await _post(client, auth, CLINIC, "/v1/remote-requests", ct)).json()
    assert created["target_institution_id"] == ids["ZH-CH"]
    assert created["hold"]["specialty_code"] == "32.02"  # CT diagnosis
    assert (await _slot(client, auth, ids["ZH-CH"], code="32.02"))["held"] == 1


async def test_the_report_and_the_conversion_are_sent_as_webhooks(api, client, auth, app) -> None:
    from sqlalchemy import select

    from app.db.webhook_models import WebhookEvent

    await _readers(client, auth, api)
    created = (await _post(client, auth, CLINIC, "/v1/remote-requests", read_body())).json()
    await api.act(
        COUNTY, created, "report", {"conclusion": "急性下壁心梗", "reader": {"name": "李"}}
    )
    await api.set_beds("ZH-CH", {"03": (20, 1)})
    await _post(
        client,
        auth,
        CLINIC,
        f"/v1/referrals/{created['id']}/convert",
        {"care_type": "inpatient", "specialty_code": "03.04"},
    )
    async with app.state.database.unit_of_work(read_only=True) as session:
        queued = (
            await session.execute(
                select(WebhookEvent.type, WebhookEvent.recipients, WebhookEvent.payload).where(
                    WebhookEvent.referral_id == created["id"]
                )
            )
        ).all()
    types = [t for t, _r, _p in queued]
    assert types.count("referral.reported") == 1 and types.count("referral.converted") == 1
    for type_, recipients, payload in queued:
        if type_ in ("referral.reported", "referral.converted"):
            assert set(recipients) == {
                created["source_institution_id"],
                created["target_institution_id"],
            }
            assert "急性下壁心梗" not in str(payload)  # thin: ids and state, never the report
