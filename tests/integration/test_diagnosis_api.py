"""Diagnosis codes through the API: each edition's codes kept as sent, catalogues, refusals."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from app.config import ConfigurationError, get_settings
from app.db import migrate as migrations
from app.db.models import Referral
from app.domain.icd10 import CodeSystem
from app.main import create_app
from app.services import diagnoses
from tests.factories import down_body
from tests.integration.test_down_referral_api import _admitted_up
from tests.support import settings_for

EXAMPLE = Path(__file__).resolve().parents[2] / "app/data/icd10/example-clinical-2.0.csv"
CLINIC = "demo clinic ZH-THC-TS"
CODE = ["body", "diagnosis", "icd10"]
SYSTEM = ["body", "diagnosis", "code_system"]


async def _count(app) -> int:
    async with app.state.database.unit_of_work(read_only=True) as session:
        return int((await session.execute(select(func.count()).select_from(Referral))).scalar())


@pytest.mark.parametrize(
    ("code", "system"),
    [
        ("I63.900x007", "clinical_2_0"),
        ("E11.900x001", "insurance_2_0"),
        ("U07.100", "clinical_2_0"),
        ("I10.x00", "gb_t_14396_2016"),
        ("A17.0†G01*", "gb_t_14396_2016"),
        ("E11.400x031+G63.2*", "insurance_2_0"),
        ("I63.9", None),  # a subcategory, the default edition
    ],
)
async def test_codes_kept_exactly_as_sent(api, client, auth, code: str, system: str | None) -> None:
    h = auth(CLINIC)
    diagnosis: dict[str, Any] = {"icd10": code, "text": "诊断"}
    if system is not None:
        diagnosis["code_system"] = system
    r = await api.create(h, diagnosis=diagnosis, expect=None)
    assert r.status_code == 201, r.text
    expected = {
        "code": code,
        "icd10": code,
        "code_system": system or "clinical_2_0",
        "name": None,  # no catalogue loaded: structure only
        "morphology": None,
        "text": "诊断",
    }
    assert r.json()["diagnosis"] == expected
    read = await client.get(f"/v1/referrals/{r.json()['id']}", headers=h)
    assert read.json()["diagnosis"] == expected


async def test_morphology_with_a_tumour(api, client, auth) -> None:
    h = auth(CLINIC)
    r = await api.create(h, diagnosis={"icd10": "C34.900", "morphology": "M81400/3"}, expect=None)
    assert r.status_code == 201, r.text
    assert r.json()["diagnosis"]["morphology"] == "M81400/3"
    r = await api.create(h, diagnosis={"icd10": "I63.900", "morphology": "M8140/3"}, expect=None)
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "diagnosis", "morphology"]


@pytest.mark.parametrize(
    ("diagnosis", "loc", "msg"),
    [
        ({"icd10": "E11.900X001"}, CODE, "lower case"),  # folded x: not the edition's code
        ({"icd10": "i63.900x007"}, CODE, "upper case"),
        ({"icd10": "E11.900x001", "code_system": "gb_t_14396_2016"}, CODE, "another edition"),
        ({"icd10": "M49.0*"}, CODE, "dagger"),
        ({"icd10": "Q99.99999"}, CODE, "structure"),
        ({"icd10": "I63.9", "code_system": "unspecified"}, SYSTEM, ""),
        ({"icd10": "I63.9", "code_system": "who"}, SYSTEM, ""),
        ({"icd10": "C34.9", "morphology": "M8140"}, ["body", "diagnosis", "morphology"], "ICD-O"),
    ],
)
async def test_refusals_name_the_field_and_change_nothing(
    api, client, auth, app, diagnosis: dict[str, Any], loc: list[str], msg: str
) -> None:
    before = await _count(app)
    r = await api.create(CLINIC, diagnosis=diagnosis, expect=None)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    errors = r.json()["errors"]
    assert [e["loc"][: len(loc)] for e in errors] == [loc], errors
    assert msg in errors[0]["msg"]
    assert diagnosis["icd10"] not in r.text
    assert await _count(app) == before


async def test_down_referral_chronic_catalogue_matches_extension_codes(api, client, auth) -> None:
    """Long prescriptions follow the category of a code kept as sent; escalation keeps it."""
    ids = await api.ids()
    up, patient = await _admitted_up(api, ids)
    hospital = auth("demo hospital HZ-FPH")
    diabetes = {"icd10": "E11.900x001", "code_system": "insurance_2_0"}
    body = down_body(up, patient, diagnosis=diabetes)
    r = await api.create(hospital, body, expect=None)
    assert r.status_code == 201, r.text
    down = r.json()
    assert down["diagnosis"]["code"] == "E11.900x001"
    assert down["diagnosis"]["code_system"] == "insurance_2_0"
    fracture = down_body(up, patient, diagnosis={"icd10": "S72.000x001"})
    r = await api.create(hospital, fracture, expect=None)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"][:2] == ["body", "medications"]
    clinic = auth("demo clinic HZ-THC-SXZ")
    for action in ("accept", "arrive", "start-follow-up"):
        down = (await api.act(clinic, down, action)).json()
    r = await api.post(
        clinic, f"/v1/referrals/{down['id']}/escalate", {"urgency": "urgent"}, expect=None
    )
    assert r.status_code == 201, r.text
    assert r.json()["diagnosis"]["code"] == "E11.900x001"
    assert r.json()["diagnosis"]["code_system"] == "insurance_2_0"


class TestCatalogueLoaded:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"icd10_catalogue_clinical_2": EXAMPLE}

    async def test_known_code_returns_its_name(self, api, client, auth) -> None:
        h = auth(CLINIC)
        r = await api.create(
            h, diagnosis={"icd10": "I63.900", "code_system": "clinical_2_0"}, expect=None
        )
        assert r.status_code == 201, r.text
        assert r.json()["diagnosis"]["name"] == "脑梗死"
        pair = await api.create(h, diagnosis={"icd10": "A17.000+G01*"}, expect=None)
        assert pair.json()["diagnosis"]["name"] == "结核性脑膜炎"
        read = await client.get(f"/v1/referrals/{r.json()['id']}", headers=h)
        assert read.json()["diagnosis"]["name"] == "脑梗死"

    async def test_unknown_code_is_refused(self, api, client, auth, app) -> None:
        before = await _count(app)
        for code in ("I63.901", "I63.9", "A17.0†G01*"):  # the right structure, not listed
            r = await api.create(CLINIC, diagnosis={"icd10": code}, expect=None)
            assert r.status_code == 422, r.text
            [error] = r.json()["errors"]
            assert error["loc"] == CODE
            assert error["msg"] == "not in the loaded catalogue of this edition"
            assert code not in r.text
        assert await _count(app) == before

    async def test_other_editions_without_catalogue_check_structure_only(
        self, api, client, auth
    ) -> None:
        gb = {"icd10": "I63.901", "code_system": "gb_t_14396_2016"}
        r = await api.create(CLINIC, diagnosis=gb, expect=None)
        assert r.status_code == 201, r.text
        assert r.json()["diagnosis"]["name"] is None


async def _stored(app, sql: str) -> list[tuple[Any, ...]]:
    async with app.state.database.unit_of_work(read_only=True) as session:
        return [tuple(row) for row in (await session.execute(text(sql))).all()]


async def test_migration_keeps_stored_codes_and_marks_them_unspecified(
    api, client, auth, app, db_url
) -> None:
    h = auth(CLINIC)
    old = await api.create(h, diagnosis={"icd10": "I63.9"}, expect=None)
    assert old.status_code == 201
    events = f"/v1/referrals/{old.json()['id']}/events"
    before = (await client.get(events, headers=h)).json()
    assert before
    await app.state.database.dispose()
    await asyncio.to_thread(migrations.downgrade, db_url, "0008")
    await asyncio.to_thread(migrations.upgrade, db_url)
    assert (await client.get(events, headers=h)).json() == before  # the rows around it stay
    read = await client.get(f"/v1/referrals/{old.json()['id']}", headers=h)
    assert read.json()["diagnosis"]["code"] == "I63.9"
    assert read.json()["diagnosis"]["code_system"] == "unspecified"
    # a code 0008 cannot hold stops the downgrade, and nothing is lost
    long = await api.create(h, diagnosis={"icd10": "E11.400x031+G63.2*"}, expect=None)
    await app.state.database.dispose()
    with pytest.raises(RuntimeError, match="longer than 16"):
        await asyncio.to_thread(migrations.downgrade, db_url, "0008")
    # the revisions above 0013 may have stepped down before it stopped: back to head
    await asyncio.to_thread(migrations.upgrade, db_url)
    rows = await _stored(app, "SELECT diagnosis_code, diagnosis_code_system FROM referral")
    assert ("E11.400x031+G63.2*", "clinical_2_0") in rows
    assert ("I63.9", "unspecified") in rows
    read = await client.get(f"/v1/referrals/{long.json()['id']}", headers=h)
    assert read.json()["diagnosis"]["code"] == "E11.400x031+G63.2*"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"code,name\nI63.900,\xe8\x84\x91\xe6\xa2\x97\xe6\xad\xbb\nI63.900,again\n", "line 3"),
        (b"\xff\xfeI63", "not UTF-8"),
        (b"code,name\n", "no codes"),
    ],
)
def test_broken_catalogue_stops_the_start(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "catalogue.csv"
    path.write_bytes(content)
    settings = settings_for("sqlite+aiosqlite:///unused.db", icd10_catalogue_insurance_2=path)
    with pytest.raises(ConfigurationError, match=message) as info:
        create_app(settings)
    assert "REFERRAL_ICD10_CATALOGUE_INSURANCE_2" in str(info.value)


def test_missing_catalogue_stops_the_start(tmp_path: Path) -> None:
    missing = tmp_path / "absent.csv"
    settings = settings_for("sqlite+aiosqlite:///unused.db", icd10_catalogue_gb14396=missing)
    with pytest.raises(ConfigurationError, match="REFERRAL_ICD10_CATALOGUE_GB14396"):
        create_app(settings)


def test_catalogue_with_bom_loads(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffcode,name\nI63.900,脑梗死\n".encode())
    app = create_app(settings_for("sqlite+aiosqlite:///unused.db", icd10_catalogue_gb14396=path))
    assert app.title


def test_catalogue_is_read_once_per_process(tmp_path: Path) -> None:
    path = tmp_path / "once.csv"
    path.write_text("I63.900,脑梗死\n", encoding="utf-8")
    settings = settings_for("sqlite+aiosqlite:///unused.db", icd10_catalogue_gb14396=path)
    first = diagnoses.catalogue(settings, CodeSystem.GB_T_14396_2016)
    path.write_text("broken", encoding="utf-8")
    again = diagnoses.catalogue(settings, CodeSystem.GB_T_14396_2016)
    assert again is first and first is not None and first.name_of("I63.900") == "脑梗死"


def test_serve_refuses_to_start_with_a_broken_catalogue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app import cli

    broken = tmp_path / "broken.csv"
    broken.write_text("code,name\nE11.900X001,2型糖尿病\n", encoding="utf-8")
    monkeypatch.setenv("REFERRAL_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("REFERRAL_ICD10_CATALOGUE_CLINICAL_2", str(broken))
    monkeypatch.setenv("REFERRAL_DEMO_MODE", "true")
    monkeypatch.chdir(tmp_path)
    try:
        assert cli.main(["serve"]) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert "REFERRAL_ICD10_CATALOGUE_CLINICAL_2" in err and "line 2" in err
    assert not (tmp_path / "x.db").exists()  # stopped before anything was prepared
