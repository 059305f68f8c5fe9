"""People to call (daily workflows #11): each referral names the source and target coordinators
(given, or the institutions' contacts), the patient's phone is sealed with the identity, and on
acceptance a patient notice (where, when, whom to call; Chinese and English; never the
diagnosis) is an event and is read by the source, the target or the consortium's SMS gateway
with its own notifier key, which may read nothing else."""

from __future__ import annotations

from sqlalchemy import select

from app.db.models import Referral
from app.db.webhook_models import WebhookEvent
from tests.factories import referral_body

CLINIC = "demo clinic ZH-THC-TS"
HOSPITAL = "demo hospital ZH-CH"
PHONE = "13800138000"


async def test_coordinators_and_the_patient_notice(api, client, auth, app) -> None:
    await api.set_beds("ZH-CH", {"03": (40, 1)})
    body = referral_body()
    body["patient"]["phone"] = PHONE
    body["source_coordinator"] = {"name": "李护士", "phone": "0599-1234567", "his_user": "li"}
    ref = (await api.create(CLINIC, body)).json()
    assert ref["contacts"]["source"]["name"] == "李护士"
    assert ref["contacts"]["target"] is None
    assert ref["patient"]["phone"] == PHONE
    council = await client.get(f"/v1/referrals/{ref['id']}", headers=auth("demo council ZHENGHE"))
    assert council.json()["patient"]["phone"] == "****8000"  # masked for anyone else
    url = f"/v1/referrals/{ref['id']}/patient-notice"
    notifier = auth("demo notifier ZHENGHE")
    assert (await client.get(url, headers=notifier)).status_code == 404  # not accepted yet
    accepted = await api.act(
        HOSPITAL,
        ref,
        "accept",
        {"coordinator": {"name": "王医生", "phone": "0599-7654321"}, "ward": "心内科二病区"},
    )
    contacts = accepted.json()["contacts"]
    assert contacts["target"]["name"] == "王医生" and contacts["source"]["name"] == "李护士"
    async with app.state.database.unit_of_work(read_only=True) as session:
        queued = (
            await session.execute(
                select(WebhookEvent.type).where(WebhookEvent.referral_id == ref["id"])
            )
        ).scalars()
        assert "referral.patient_notice" in list(queued)  # for the HIS and the SMS gateway
    got = await client.get(url, headers=notifier)
    assert got.status_code == 200, got.text
    notice = got.json()
    assert notice["phone"] == PHONE and notice["number"] == ref["number"]
    assert "政和县医院" in notice["text_zh"] and "王医生 0599-7654321" in notice["text_zh"]
    assert "测试患者甲" not in notice["text_zh"] and "测*" in notice["text_zh"]  # name masked
    assert "脑梗死" not in notice["text_zh"] + notice["text_en"]  # never the diagnosis
    assert ref["number"] in notice["text_en"]
    assert (await client.get(url, headers=auth(CLINIC))).status_code == 200
    # the SMS gateway's key reads notices and nothing else; another consortium's gateway: 404
    for path in (f"/v1/referrals/{ref['id']}", "/v1/referrals", "/v1/institutions"):
        assert (await client.get(path, headers=notifier)).status_code == 403, path
    other = await client.get(url, headers=auth("demo notifier HUANGZHONG-1"))
    assert other.status_code == 404
    # the phone is sealed at rest with the identity
    async with app.state.database.unit_of_work(read_only=True) as session:
        row = await session.scalar(select(Referral).where(Referral.id == ref["id"]))
        assert row is not None and PHONE not in row.sensitive


async def test_the_institution_contact_is_the_default(api) -> None:
    await api.set_beds("ZH-CH", {"03": (40, 1)})
    ref = (await api.create(CLINIC)).json()
    assert ref["contacts"]["source"]["default"] is True
    accepted = (await api.act(HOSPITAL, ref, "accept")).json()
    assert accepted["contacts"]["target"]["default"] is True
    assert accepted["contacts"]["target"]["phone"]  # the demo hospital's contact phone
