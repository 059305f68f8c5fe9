"""Dated prior results are stored and read back (a `done_on` date in `tests_done`, or in a
source's amendment, answered 500: the sealed form could not hold a date)."""

from __future__ import annotations

DONE = [{"name": "心电图", "result": "窦性心律", "done_on": "2026-12-01"}]


async def test_dated_tests_done_are_kept(api) -> None:
    await api.set_beds("ZH-CH", {"03": (40, 1)})
    ref = (await api.create("demo clinic ZH-THC-TS", tests_done=DONE)).json()
    assert [{k: t[k] for k in DONE[0]} for t in ref["tests_done"]] == DONE
    asked = await api.act("demo hospital ZH-CH", ref, "request-information", {"question": "?"})
    amended = await api.act(
        "demo clinic ZH-THC-TS",
        asked.json(),
        "amend",
        {"answer": "见附", "tests_done": [{**DONE[0], "done_on": "2026-12-02"}]},
    )
    assert amended.json()["tests_done"][0]["done_on"] == "2026-12-02"
    read = (await api.get("demo hospital ZH-CH", ref)).json()
    assert read["tests_done"][0]["done_on"] == "2026-12-02"
