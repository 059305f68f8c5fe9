"""The council's console in a real headless Chromium against a real uvicorn process seeded with
a generated year: sign in, the charts and tables drawn from the live API (the numbers on the
page are the API's), the bed board, the language switch, a clinic key refused, no request
leaving 127.0.0.1, no CSP violation, all under a gateway's path prefix.

Screenshots go to ``artifacts/console/`` (ignored by git); the path is printed."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import update

from app.db.models import BedCapacity
from app.db.session import Database
from tests.e2e.server import Server, cli, free_port, start
from tests.factories import STROKE, census, referral_body
from tests.report_data import generate

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
PREFIX = "/referral"
YEAR = 2025
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "console"

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')"
)
if not Path(CHROMIUM).exists():  # .ci/run installs Debian's chromium; a browser download fails
    pytest.skip(
        f"no Chromium at {CHROMIUM} (apt-get install chromium); the console's browser test "
        "needs it",
        allow_module_level=True,
    )


class Service:
    def __init__(self, server: Server, keys: dict[str, str]) -> None:
        self.server = server
        self.keys = keys
        self.base = server.base_url + PREFIX

    def h(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}

    def get(self, name: str, path: str, **params: Any) -> Any:
        r = httpx.get(self.base + path, params=params, headers=self.h(name), timeout=30)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        return r.json()

    def csv(self, name: str, path: str, **params: Any) -> bytes:
        headers = {**self.h(name), "Accept": "text/csv"}
        r = httpx.get(self.base + path, params=params, headers=headers, timeout=30)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), path
        return r.content

    def post(self, name: str, path: str, body: Any, **headers: str) -> Any:
        r = httpx.post(self.base + path, json=body, headers={**self.h(name), **headers}, timeout=30)
        assert r.status_code in (200, 201), (path, r.status_code, r.text[:300])
        return r.json()


def _seed(service: Service, db_url: str) -> None:
    admin = "demo admin"
    consortia = service.get(admin, "/v1/consortia")["items"]
    zhenghe = next(c["id"] for c in consortia if c["code"] == "ZHENGHE")

    async def write() -> None:
        database = Database(db_url)
        try:
            async with database.unit_of_work() as session:
                await generate(session, zhenghe, 900, YEAR, seed=7)
        finally:
            await database.dispose()

    asyncio.run(write())
    ids = {
        i["code"]: i["id"]
        for i in service.get(admin, "/v1/institutions", consortium=zhenghe, limit=200)["items"]
    }

    def put(code: str, beds: dict[str, tuple[int, int]], as_of: datetime | None = None) -> None:
        r = httpx.put(
            f"{service.base}/v1/institutions/{ids[code]}/capacity",
            json=census(beds, as_of),
            headers=service.h(admin),
            timeout=30,
        )
        assert r.status_code == 200, r.text

    put("ZH-CH", {"03": (20, 17), "04": (12, 3)})
    put("ZH-TCM", {"03": (10, 9)})
    # a hold on the last bed, then a census with the bed taken: one patient over (overflow)
    service.post(
        "demo clinic ZH-THC-TS",
        "/v1/referrals",
        referral_body(),
        **{"Idempotency-Key": uuid.uuid4().hex},
    )
    ref = service.post(
        "demo clinic ZH-THC-LY",
        "/v1/referrals",
        referral_body(),
        **{"Idempotency-Key": uuid.uuid4().hex},
    )
    put(next(c for c, i in ids.items() if i == ref["target_institution_id"]), {"03": (10, 10)})

    async def stale() -> None:  # a census a day old (the API refuses a census older than stored)
        database = Database(db_url)
        try:
            async with database.unit_of_work() as session:
                await session.execute(
                    update(BedCapacity)
                    .where(BedCapacity.institution_id == ids["ZH-MCH"])
                    .values(as_of=datetime.now(UTC) - timedelta(days=1))
                )
        finally:
            await database.dispose()

    asyncio.run(stale())
    # a green-channel referral with its door and imaging times (this year)
    stroke = service.post(
        "demo clinic ZH-THC-TS",
        "/v1/referrals",
        referral_body(**STROKE),
        **{"Idempotency-Key": uuid.uuid4().hex},
    )
    target = next(c for c, i in ids.items() if i == stroke["target_institution_id"])
    door = datetime.now(UTC) - timedelta(hours=1)
    for code, at in (("door", door), ("imaging", door + timedelta(minutes=31))):
        service.post(
            f"demo hospital {target}",
            f"/v1/referrals/{stroke['id']}/milestones",
            {"milestone": code, "at": at.isoformat()},
        )


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("console")
    db_url = f"sqlite+aiosqlite:///{tmp / 'console.db'}"
    keys_file = tmp / "keys.json"
    server = start(
        cli("serve", "--demo"),
        {
            "REFERRAL_DATABASE_URL": db_url,
            "REFERRAL_DEMO_KEYS_FILE": str(keys_file),
            "REFERRAL_ROOT_PATH": PREFIX,  # the console under a gateway's prefix
            "REFERRAL_SWEEP_INTERVAL_SECONDS": "0",
            "REFERRAL_WEBHOOK_RELAY_INTERVAL_SECONDS": "0",
        },
        tmp / "server.log",
        port=free_port(),
    )
    try:
        keys = {k["name"]: k["key"] for k in json.loads(keys_file.read_text("utf-8"))["keys"]}
        svc = Service(server, keys)
        _seed(svc, db_url)
        yield svc
    finally:
        server.stop()


def _same(page_value: str, api_value: Any) -> bool:
    if api_value is None:
        return page_value == ""
    if isinstance(api_value, bool):
        return page_value == str(api_value).lower()
    if isinstance(api_value, (int, float)):
        return float(page_value) == float(api_value)
    return page_value == str(api_value)


def test_the_console_in_a_browser(service: Service) -> None:
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    council = "demo council ZHENGHE"
    requests: list[str] = []
    problems: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
        page = context.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.on(
            "console",
            lambda m: problems.append(m.text) if m.type in ("error", "warning") else None,
        )
        page.on("pageerror", lambda e: problems.append(str(e)))

        def loads(n: int) -> None:
            page.wait_for_selector(f"body[data-loads='{n}']", timeout=30_000)

        def set_year(year: int) -> None:  # one change event, as a person typing and leaving
            page.eval_on_selector(
                "#year",
                "(e, v) => { e.value = v; e.dispatchEvent(new Event('change')); }",
                str(year),
            )

        page.goto(service.base + "/console")
        assert page.inner_text("h1") == "医联体管理控制台"
        assert page.evaluate("document.documentElement.lang") == "zh-CN"

        # a clinic key is refused and kept nowhere
        page.fill("#key", service.keys["demo clinic ZH-THC-TS"])
        page.click("#signin-button")
        page.wait_for_function("document.getElementById('signin-error').textContent.length > 0")
        assert "无权使用控制台" in page.inner_text("#signin-error")
        assert page.is_hidden("#console")
        assert page.evaluate("sessionStorage.length") == 0

        # the council signs in: the key in sessionStorage, never in localStorage
        page.fill("#key", service.keys[council])
        page.click("#signin-button")
        loads(1)
        assert page.evaluate("localStorage.length") == 0
        assert (
            page.evaluate("sessionStorage.getItem('referral-console-key')") == service.keys[council]
        )
        assert page.is_disabled("#consortium")  # a council sees its own consortium only
        set_year(YEAR)
        loads(2)
        zhenghe = page.input_value("#consortium")
        period = {"from": f"{YEAR}-01-01", "to": f"{YEAR + 1}-01-01", "consortium": zhenghe}

        # monthly figures: every cell of the table and the chart series are the API's numbers
        by_month = {
            r["month"]: r
            for r in service.get(council, "/v1/reports/referrals", group_by="month", **period)
        }
        cells = page.eval_on_selector_all(
            "#table-monthly td[data-field]",
            "tds => tds.map(td => "
            "[td.parentElement.dataset.month, td.dataset.field, td.dataset.value])",
        )
        assert len(cells) == 12 * 17
        for month, name, value in cells:
            assert _same(value, by_month.get(month, {}).get(name)), (month, name, value)
        drawn = page.evaluate(
            "echarts.getInstanceByDom(document.getElementById('chart-flow')).getOption()"
            ".series.map(s => [s.id, s.data])"
        )
        months = [f"{YEAR}-{m:02d}" for m in range(1, 13)]
        for sid, values in drawn:
            assert values == [by_month.get(m, {}).get(sid) for m in months], sid
        rejections = page.evaluate(
            "echarts.getInstanceByDom(document.getElementById('chart-rejections')).getOption()"
            ".series.map(s => [s.id, s.data])"
        )
        for sid, values in rejections:
            reason = sid.removeprefix("rejections_")
            assert values == [
                by_month[m]["rejections"][reason] if m in by_month else None for m in months
            ]
        # one member: the institution rows of that member
        page.select_option("#member", label="政和县医院 (ZH-CH)")
        ch = page.input_value("#member")
        mine = {
            r["month"]: r
            for r in service.get(council, "/v1/reports/referrals", group_by="institution", **period)
            if r["key"] == ch
        }
        cells = page.eval_on_selector_all(
            "#table-monthly td[data-field]",
            "tds => tds.map(td => "
            "[td.parentElement.dataset.month, td.dataset.field, td.dataset.value])",
        )
        for month, name, value in cells:
            assert _same(value, mine.get(month, {}).get(name)), (month, name, value)

        # leaks: each row shown has the API's days and patients
        leaks = {
            "|".join([r["month"], r["specialty_code"], r["institution_id"] or "", r["reason"]]): r
            for r in service.get(council, "/v1/reports/leaks", **period)
        }
        shown = page.eval_on_selector_all(
            "#table-leaks tr[data-key]",
            "trs => trs.map(tr => [tr.dataset.key,"
            " tr.querySelector('[data-field=days]').textContent,"
            " tr.querySelector('[data-field=referrals]').textContent, tr.lastChild.textContent])",
        )
        assert len(shown) == min(40, len(leaks)) and len(shown) > 10
        for k, days, referrals, words in shown:
            assert (int(days), int(referrals)) == (leaks[k]["days"], leaks[k]["referrals"]), k
            assert words == leaks[k]["summary_zh"]

        # the scorecard: met / missed / not measured per month as the API says
        card = service.get(council, "/v1/reports/appraisal", year=YEAR, consortium=zhenghe)
        want = {
            (m["institution_id"] + "|" + t["code"], x["month"]): x["met"]
            for m in card["members"]
            for t in m["targets"]
            for x in t["months"]
        }
        marks = page.eval_on_selector_all(
            "#table-appraisal td[data-month]",
            "tds => tds.map(td => "
            "[td.parentElement.dataset.key, td.dataset.month, td.dataset.met])",
        )
        assert len(marks) > 24
        for k, month, met in marks:
            assert _same(met, want[(k, month)]), (k, month, met)

        # the bed board: every member × specialty, free, held, overflow, stale
        board = service.get(council, f"/v1/consortia/{zhenghe}/bed-board")
        rows = page.eval_on_selector_all(
            "#table-beds tr[data-key]",
            "trs => trs.map(tr => [tr.dataset.key, ...['total','occupied','held','free','overflow']"
            ".map(f => tr.querySelector(`[data-field=${f}]`).textContent),"
            " tr.querySelector('[data-field=stale]').dataset.value])",
        )
        items = {
            "|".join([i["institution_code"], i["kind"], i["specialty_code"]]): i
            for i in board["items"]
        }
        assert len(rows) == len(items) >= 4
        for k, total, occupied, held, free, overflow, stale in rows:
            i = items[k]
            assert [int(total), int(occupied), int(held), int(free), int(overflow)] == [
                i["total"],
                i["occupied"],
                i["held"],
                i["free"],
                i["overflow"],
            ], k
            assert stale == str(i["stale"]).lower()
        assert any(i["overflow"] > 0 for i in items.values())
        assert any(i["stale"] for i in items.values())
        assert any(i["held"] > 0 for i in items.values())
        # each CSV button downloads the API's own CSV of what the panel shows
        csvs = {
            "referrals": ("/v1/reports/referrals", {**period, "group_by": "institution"}),
            "leaks": ("/v1/reports/leaks", period),
            "appraisal": ("/v1/reports/appraisal", {"year": YEAR, "consortium": zhenghe}),
            "beds": (f"/v1/consortia/{zhenghe}/bed-board", {}),
        }
        for kind, (path, params) in csvs.items():
            with page.expect_download() as got:
                page.click(f"button.csv[data-csv={kind}]")
            download = got.value
            assert download.suggested_filename.endswith(".csv"), download.suggested_filename
            saved = ARTIFACTS / download.suggested_filename
            download.save_as(saved)
            body = saved.read_bytes()
            assert body.startswith(b"\xef\xbb\xbf"), kind  # UTF-8 with BOM, for spreadsheets
            api_csv = service.csv(council, path, **params)
            if kind == "beds":  # staleness moves with the clock: the same header and rows
                shown = body.decode("utf-8-sig").splitlines()
                fetched = api_csv.decode("utf-8-sig").splitlines()
                assert shown[0] == fetched[0] and len(shown) == len(fetched) > 4, kind
            else:
                assert body == api_csv, kind

        page.screenshot(path=str(ARTIFACTS / "console-zh.png"), full_page=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(ARTIFACTS / "console-zh-top.png"))
        page.eval_on_selector("#panel-beds", "e => e.scrollIntoView()")
        page.screenshot(path=str(ARTIFACTS / "console-zh-beds.png"))

        # the language switch: English labels, the same numbers
        page.click("#lang")
        assert page.inner_text("h1") == "Consortium council console"
        assert page.evaluate("document.documentElement.lang") == "en"
        assert "Up sent" in page.inner_text("#table-monthly")
        assert page.inner_text("#table-leaks tr[data-key] td:last-child") in {
            r["summary"] for r in leaks.values()
        }
        page.screenshot(path=str(ARTIFACTS / "console-en.png"), full_page=True)

        # this year: the green channel of the referral timed above
        this_year = datetime.now(UTC).year
        set_year(this_year)
        loads(3)
        green = service.get(
            council,
            "/v1/reports/green-channel",
            **{"from": f"{this_year}-01-01", "to": f"{this_year + 1}-01-01", "consortium": zhenghe},
        )
        expected_rows = {
            "|".join([g["pathway"], g["institution_id"] or "", g["month"], iv["target"]]): iv
            for g in green
            for iv in g["intervals"]
        }
        shown = page.eval_on_selector_all(
            "#table-green tr[data-key]",
            "trs => trs.map(tr => [tr.dataset.key,"
            " tr.querySelector('[data-field=median_minutes]').textContent,"
            " tr.querySelector('[data-field=target_minutes]').textContent])",
        )
        assert {k for k, _, _ in shown} == set(expected_rows) and shown, (
            page.inner_text("#status"),
            page.inner_html("#table-green")[:500],
            problems,
        )
        for k, median, target in shown:
            iv = expected_rows[k]
            if iv["median_minutes"] is None:
                assert median == "–"
            else:
                assert float(median) == iv["median_minutes"]
            assert int(target) == iv["target_minutes"]
        assert any(iv["median_minutes"] == 31 for iv in expected_rows.values())
        page.screenshot(path=str(ARTIFACTS / "console-green-channel.png"), full_page=True)

        # signing out forgets the key
        page.click("#signout")
        assert page.evaluate("sessionStorage.getItem('referral-console-key')") is None
        browser.close()

    hosts = {urlsplit(u).hostname for u in requests if not u.startswith(("data:", "blob:"))}
    assert hosts == {"127.0.0.1"}, hosts
    assert all(urlsplit(u).path.startswith(PREFIX) for u in requests if u.startswith("http"))
    assert not [x for x in problems if "Content Security Policy" in x or "Refused" in x], problems
    assert not [x for x in problems if "Uncaught" in x or "TypeError" in x], problems
    print(f"console screenshots: {ARTIFACTS}")
