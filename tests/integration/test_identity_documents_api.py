"""Patients without a resident ID: documents by type, sex codes, episodes, masking."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from app.domain.identity import check_character, make_resident_id
from tests.factories import referral_body, resident_id

CLINIC = "demo clinic ZH-THC-TS"
BIRTH = date(1985, 3, 15)

VALID: dict[str, dict[str, Any]] = {
    "resident_id": {"type": "resident_id", "number": make_resident_id("350725", BIRTH, 11)},
    "hmt_residence_permit": {
        "type": "hmt_residence_permit",
        "number": make_resident_id("810000", BIRTH, 11),
    },
    "hk_macao_travel_permit": {"type": "hk_macao_travel_permit", "number": "H12345678"},
    "hk_macao_travel_permit_old": {"type": "hk_macao_travel_permit", "number": "M1234567802"},
    "taiwan_travel_permit": {"type": "taiwan_travel_permit", "number": "87654321"},
    "foreigner_2023": {
        "type": "foreigner_permanent_id",
        "number": make_resident_id("931840", BIRTH, 11),
    },
    "foreigner_2017": {"type": "foreigner_permanent_id", "number": "USA118503150112"},
    "passport": {"type": "passport", "number": "P1234567", "issuing_country": "DEU"},
    "birth_certificate": {"type": "birth_certificate", "number": "Q350012345"},
}
CARRIES_BIRTH = {"resident_id", "hmt_residence_permit", "foreigner_2023"}


def _with(doc: dict[str, Any], **patient: Any) -> dict[str, Any]:
    body = referral_body()
    body["patient"].pop("resident_id")
    body["patient"].update(identity_document=doc, **patient)
    return body


@pytest.mark.parametrize("name", sorted(VALID))
async def test_each_document_type_is_accepted_sealed_and_masked(api, client, auth, name) -> None:
    doc = VALID[name]
    extra = {} if name in CARRIES_BIRTH else {"birth_date": str(BIRTH), "sex": "2"}
    r = await api.create(CLINIC, _with(doc, **extra), expect=None)
    assert r.status_code == 201, r.text
    created = r.json()
    sent_back = {k: v for k, v in created["patient"]["identity_document"].items() if v is not None}
    assert sent_back == doc  # the source sees it as sent
    assert created["patient_birth_date"] == str(BIRTH)
    expected_sex = "1" if name in CARRIES_BIRTH else "2"  # sequence 011 is odd: male
    assert created["patient_sex_code"] == expected_sex
    assert created["patient_sex"] == {"1": "male", "2": "female"}[expected_sex]
    council = await client.get(
        f"/v1/referrals/{created['id']}", headers=auth("demo council ZHENGHE")
    )
    seen = council.json()
    shown = seen["patient"]["identity_document"]
    assert shown["type"] == doc["type"] and "*" in shown["number"]
    assert doc["number"] not in council.text
    assert seen["patient_birth_date"] is None and seen["patient_birth_year"] == BIRTH.year
    assert "19850315" not in council.text and "850315" not in council.text
    assert (seen["patient"]["resident_id"] is not None) == (name == "resident_id")


INVALID = [
    ({"type": "resident_id", "number": make_resident_id("810000", BIRTH, 1)}, "number"),
    ({"type": "resident_id", "number": make_resident_id("350725", BIRTH, 1)[:17] + "Y"}, "number"),
    ({"type": "hmt_residence_permit", "number": make_resident_id("350725", BIRTH, 1)}, "number"),
    ({"type": "hmt_residence_permit", "number": "810000198503150110"}, "number"),
    ({"type": "hk_macao_travel_permit", "number": "X12345678"}, "number"),
    ({"type": "hk_macao_travel_permit", "number": "H1234567"}, "number"),
    ({"type": "taiwan_travel_permit", "number": "1234567"}, "number"),
    ({"type": "foreigner_permanent_id", "number": "931840198503150110"}, "number"),
    ({"type": "foreigner_permanent_id", "number": "USA111399150112"}, "number"),
    ({"type": "foreigner_permanent_id", "number": "US1185031501120"}, "number"),
    ({"type": "passport", "number": "P1234567"}, "issuing_country"),
    ({"type": "passport", "number": "P12", "issuing_country": "DEU"}, "number"),
    ({"type": "birth_certificate", "number": "1350012345"}, "number"),
    (
        {"type": "birth_certificate", "number": "Q350012345", "issuing_country": "CHN"},
        "issuing_country",
    ),
    ({"type": "newborn", "birth_order": 1}, "mother"),
    ({"type": "passport"}, "number"),
]


@pytest.mark.parametrize(("doc", "field"), INVALID)
async def test_each_format_is_checked_naming_the_field(api, client, auth, doc, field) -> None:
    r = await api.create(CLINIC, _with(doc, birth_date=str(BIRTH)), expect=None)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    locs = [e["loc"] for e in r.json()["errors"]]
    assert ["body", "patient", "identity_document", field] in locs, locs
    if doc.get("number"):
        assert doc["number"] not in r.text


async def test_newborn_document_rules(api, client, auth) -> None:
    mother = {"identity_document": VALID["resident_id"]}
    h = auth(CLINIC)
    for doc, loc in (
        ({"type": "newborn", "mother": mother}, ["identity_document", "birth_order"]),
        ({"type": "newborn", "mother": mother, "birth_order": 0}, None),
        (
            {"type": "passport", "number": "P1234567", "issuing_country": "DEU", "mother": mother},
            ["identity_document", "mother"],
        ),
        (
            {
                "type": "newborn",
                "mother": {"identity_document": {"type": "newborn"}},
                "birth_order": 1,
            },
            None,
        ),
    ):
        r = await api.create(h, _with(doc, birth_date=str(date.today())), expect=None)
        assert r.status_code == 422, r.text
        if loc:
            assert ["body", "patient", *loc] in [e["loc"] for e in r.json()["errors"]]
    # without a birth date the body must give it: a newborn's document carries none
    r = await api.create(
        h, _with({"type": "newborn", "mother": mother, "birth_order": 1}), expect=None
    )
    assert r.status_code == 422
    assert ["body", "patient", "birth_date"] in [e["loc"] for e in r.json()["errors"]]


async def test_exactly_one_document_and_body_checks(api, client, auth) -> None:
    h = auth(CLINIC)
    both = referral_body()
    both["patient"]["identity_document"] = VALID["passport"]
    neither = referral_body()
    neither["patient"].pop("resident_id")
    for body in (both, neither):
        r = await api.create(h, body, expect=None)
        assert r.status_code == 422
        assert ["body", "patient", "identity_document"] in [e["loc"] for e in r.json()["errors"]]
    cases = [
        (_with(VALID["passport"]), "birth_date"),
        (_with(VALID["passport"], birth_date="1899-12-31"), "birth_date"),
        (_with(VALID["foreigner_2017"], birth_date="1985-03-16"), "birth_date"),
        (_with(VALID["resident_id"], sex="2"), "sex"),
        (_with(VALID["resident_id"], birth_date="1985-03-16"), "birth_date"),
        (_with(VALID["passport"], birth_date=str(BIRTH), sex="3"), "sex"),
        (_with(VALID["passport"], birth_date=str(BIRTH), sex=1), "sex"),
    ]
    for body, field in cases:
        r = await api.create(h, body, expect=None)
        assert r.status_code == 422, (field, r.text)
        assert ["body", "patient", field] in [e["loc"] for e in r.json()["errors"]], r.text


@pytest.mark.parametrize(
    ("sex", "word", "code"),
    [
        ("0", "unknown", "0"),
        ("1", "male", "1"),
        ("2", "female", "2"),
        ("9", "unstated", "9"),
        ("female", "female", "2"),
        ("unstated", "unstated", "9"),
        (None, "unknown", "0"),
    ],
)
async def test_sex_gb_t_2261_1_codes(api, client, auth, sex, word, code) -> None:
    extra = {"birth_date": str(BIRTH)} | ({"sex": sex} if sex is not None else {})
    r = await api.create(CLINIC, _with(VALID["passport"], **extra), expect=None)
    assert r.status_code == 201, r.text
    assert (r.json()["patient_sex"], r.json()["patient_sex_code"]) == (word, code)
    # a document that carries the sex wins over "unknown"/"unstated", and agrees with "1"
    for seq, given in zip((11, 13, 15, 17), ("0", "9", "1", "male"), strict=True):
        # a man born on BIRTH each time (odd sequence numbers), not one patient four times
        doc = {"type": "resident_id", "number": make_resident_id("350725", BIRTH, seq)}
        r = await api.create(CLINIC, _with(doc, sex=given), expect=None)
        assert r.status_code == 201 and r.json()["patient_sex_code"] == "1"


async def test_episodes_match_on_type_and_number(api, client, auth) -> None:
    h = auth(CLINIC)
    legacy = referral_body()
    number = legacy["patient"]["resident_id"]
    first = (await api.create(h, legacy, expect=None)).json()
    # the same resident ID sent as a typed document joins the episode stored before; the same
    # patient and specialty while the first is live: referred again on purpose
    again = {
        **_with({"type": "resident_id", "number": number}),
        "episode_id": first["episode_id"],
        "duplicate_reason": "other",
    }
    r = await api.create(h, again, expect=None)
    assert r.status_code == 201, r.text
    assert r.json()["episode_id"] == first["episode_id"]
    # an 8-digit permit and the older 10-digit card of the same person
    doc = {"type": "hk_macao_travel_permit", "number": "H55443322"}
    one = (await api.create(h, _with(doc, birth_date=str(BIRTH)), expect=None)).json()
    old = {"type": "hk_macao_travel_permit", "number": "H5544332201"}
    # the same person, with a live referral for the same specialty: sent again on purpose
    r = await api.create(
        h,
        {
            **_with(old, birth_date=str(BIRTH)),
            "episode_id": one["episode_id"],
            "duplicate_reason": "other",
        },
        expect=None,
    )
    assert r.status_code == 201 and r.json()["episode_id"] == one["episode_id"]
    # the same characters as another type are another person
    cert = (
        await api.create(h, _with(VALID["birth_certificate"], birth_date=str(BIRTH)), expect=None)
    ).json()
    same_chars = {"type": "passport", "number": "Q350012345", "issuing_country": "CHN"}
    r = await api.create(
        h,
        {**_with(same_chars, birth_date=str(BIRTH)), "episode_id": cert["episode_id"]},
        expect=None,
    )
    assert r.status_code == 422
    assert ["body", "episode_id"] in [e["loc"] for e in r.json()["errors"]]


def _candidates(masked: str, region: str, year: int, male: bool) -> int:
    """Numbers fitting the mask, the region code, the birth year and the sex shown."""
    assert masked[:3] == region[:3] and set(masked[3:17]) == {"*"}
    count = 0
    for month in range(1, 13):
        for day in range(1, calendar.monthrange(year, month)[1] + 1):
            head = f"{region}{year:04d}{month:02d}{day:02d}"
            for seq in range(1 if male else 0, 1000, 2):
                body = f"{head}{seq:03d}"
                if check_character(body) == masked[17]:
                    count += 1
    return count


async def test_masked_resident_id_cannot_be_rebuilt(api, client, auth) -> None:
    body = referral_body()
    number = body["patient"]["resident_id"]
    created = (await api.create(CLINIC, body, expect=None)).json()
    seen = (
        await client.get(f"/v1/referrals/{created['id']}", headers=auth("demo council ZHENGHE"))
    ).json()
    masked = seen["patient"]["resident_id"]
    assert seen["patient"]["identity_document"]["number"] == masked
    assert seen["patient_birth_date"] is None
    assert number[6:14] not in masked and number[14:17] not in masked[3:]
    count = _candidates(
        masked, number[:6], seen["patient_birth_year"], seen["patient_sex"] == "male"
    )
    assert count >= 10**4, count


async def test_newborn_critical_neonatal_green_channel_end_to_end(api, client, auth) -> None:
    born = datetime.now(UTC) - timedelta(hours=3)
    mother = make_resident_id("350725", date(1996, 7, 1), 22)
    body = referral_body(pathway="critical_neonatal", urgency="emergency", specialty_code=None)
    body["patient"] = {
        "name": "测试新生儿",
        "identity_document": {
            "type": "newborn",
            "mother": {"identity_document": {"type": "resident_id", "number": mother}},
            "birth_order": 2,
        },
        "birth_date": str(born.date()),
        "sex": "2",
        "insurance_scheme": "urban_rural_resident",
    }
    body["diagnosis"] = {"icd10": "P22.0", "text": "新生儿呼吸窘迫综合征（测试）"}
    r = await api.create("demo clinic HZ-THC-XB", body, expect=None)
    assert r.status_code == 201, r.text
    ref = r.json()
    assert ref["pathway_code"] == "critical_neonatal" and ref["status"] == "pending"
    assert ref["patient_sex_code"] == "2" and ref["patient_birth_date"] == str(born.date())
    assert ref["patient"]["identity_document"]["mother"]["identity_document"]["number"] == mother
    ids = {
        i["id"]: i["code"]
        for i in (
            await client.get("/v1/institutions", params={"limit": 200}, headers=auth("demo admin"))
        ).json()["items"]
    }
    hospital = auth(f"demo hospital {ids[ref['target_institution_id']]}")
    council = (
        await client.get(f"/v1/referrals/{ref['id']}", headers=auth("demo council HUANGZHONG-1"))
    ).json()
    shown = council["patient"]["identity_document"]
    assert shown["birth_order"] == 2 and mother not in str(shown)
    assert "*" in shown["mother"]["identity_document"]["number"]

    async def act(current: dict[str, Any], action: str, payload: Any = None) -> dict[str, Any]:
        tag = f'"{current["id"]}.{current["version"]}"'
        r = await client.post(
            f"/v1/referrals/{current['id']}/{action}",
            json=payload,
            headers={**hospital, "If-Match": tag},
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    ref = await act(ref, "accept", {"ward": "NICU", "bed": "3"})
    door = datetime.now(UTC) - timedelta(minutes=40)
    for code, at in (
        ("door", door),
        ("first_examination", door + timedelta(minutes=6)),
        ("treatment_start", door + timedelta(minutes=25)),
    ):
        m = await client.post(
            f"/v1/referrals/{ref['id']}/milestones",
            json={"milestone": code, "at": at.isoformat()},
            headers=hospital,
        )
        assert m.status_code == 201, m.text
    met = {t["code"]: t["status"] for t in m.json()["targets"]}
    assert met == {"door_to_first_examination": "met", "door_to_treatment": "met"}
    current = (await client.get(f"/v1/referrals/{ref['id']}", headers=hospital)).json()
    for action in ("arrive", "admit", "complete"):
        current = await act(current, action)
    assert current["status"] == "completed"
    # the baby's second referral joins the same episode; another birth order does not
    again = {**body, "episode_id": current["episode_id"]}
    r = await api.create("demo clinic HZ-THC-XB", again, expect=None)
    assert r.status_code == 201 and r.json()["episode_id"] == current["episode_id"]
    twin = {**body, "episode_id": current["episode_id"]}
    twin["patient"] = {
        **body["patient"],
        "identity_document": {**body["patient"]["identity_document"], "birth_order": 1},
    }
    r = await api.create("demo clinic HZ-THC-XB", twin, expect=None)
    assert r.status_code == 422


async def test_documents_are_sealed_at_rest(api, client, auth, app) -> None:
    from sqlalchemy import text

    h = auth(CLINIC)
    for doc in (VALID["passport"], VALID["birth_certificate"], VALID["taiwan_travel_permit"]):
        r = await api.create(h, _with(doc, birth_date=str(BIRTH)), expect=None)
        assert r.status_code == 201
    async with app.state.database.unit_of_work(read_only=True) as session:
        rows = (await session.execute(text("SELECT * FROM referral"))).all()
    dump = repr(rows)
    for doc in (VALID["passport"], VALID["birth_certificate"], VALID["taiwan_travel_permit"]):
        assert doc["number"] not in dump
    assert resident_id()  # the factory still builds resident IDs for other tests


async def test_down_referral_and_escalation_carry_the_document(api, client, auth) -> None:

    await api.set_beds("HZ-FPH", {"03": (40, 10)}, expect=None)
    doc = {"type": "passport", "number": "X9988776", "issuing_country": "FRA"}
    body = {**_with(doc, birth_date=str(BIRTH), sex="9"), "specialty_code": "03.04"}
    r = await api.create("demo clinic HZ-THC-SXZ", body, expect=None)
    assert r.status_code == 201, r.text
    hospital = auth("demo hospital HZ-FPH")
    up = r.json()
    for action in ("accept", "arrive", "admit"):
        up = (await api.act(hospital, up, action)).json()
    # another person's document (same characters, other country) is not this up-referral's
    other = {**body["patient"], "identity_document": {**doc, "issuing_country": "BEL"}}
    r = await api.create_down(hospital, up, other, expect=None)
    assert r.status_code == 422
    assert ["body", "up_referral_id"] in [e["loc"] for e in r.json()["errors"]]
    r = await api.create_down(hospital, up, body["patient"], expect=None)
    assert r.status_code == 201, r.text
    down = r.json()
    assert down["episode_id"] == up["episode_id"] and down["patient_sex_code"] == "9"
    clinic = auth("demo clinic HZ-THC-SXZ")
    for action in ("accept", "arrive", "start-follow-up"):
        down = (await api.act(clinic, down, action)).json()
    r = await api.post(
        clinic, f"/v1/referrals/{down['id']}/escalate", {"urgency": "urgent"}, expect=None
    )
    assert r.status_code == 201, r.text
    again = r.json()
    assert again["episode_id"] == up["episode_id"]
    assert {k: v for k, v in again["patient"]["identity_document"].items() if v} == doc
    assert (again["patient_birth_date"], again["patient_sex_code"]) == (str(BIRTH), "9")
    assert again["patient"]["resident_id"] is None
