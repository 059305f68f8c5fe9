"""The privacy sweep itself: what it finds, and that a finding fails the run."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import httpx
import pytest

from tests.factories import referral_body, resident_id
from tests.privacy_plugin import Sweep

ROOT = Path(__file__).resolve().parents[2]


def test_finds_ids_names_and_diagnoses_not_lookalikes() -> None:
    sweep = Sweep()
    body = referral_body()
    assert sweep.check("log x", f"patient {resident_id()} arrived")
    assert sweep.check("log x", f"id={resident_id().lower()}")
    assert sweep.check("log x", f"name {body['patient']['name']}")
    assert sweep.check("log x", f"dx: {body['diagnosis']['text']}")
    assert not sweep.check("log x", "request 01a2051f-217c-716c-b53f-9c814e547216 took 12 ms")
    assert not sweep.check("log x", "hmac b6f5614d9d57021010123456789012345678ad54 ok")
    assert not sweep.check("log x", "number 1234567890123456789 (19 digits)")
    assert not sweep.check("log x", "version 1.123456789012345678")
    assert len(sweep.findings) == 4
    assert all(resident_id()[:6] not in f for f in sweep.findings)  # findings are masked


def test_checks_records_error_bodies_and_metrics() -> None:
    sweep = Sweep()
    rid = resident_id()
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "x %s", ("ok",), None)
    record.who = rid  # an extra field
    sweep.check_record(record)
    request = httpx.Request("POST", "http://t/v1/referrals")
    sweep.check_response(httpx.Response(201, content=rid.encode(), request=request))
    sweep.check_response(httpx.Response(422, content=b'{"detail": "fine"}', request=request))
    sweep.check_response(httpx.Response(422, content=rid.encode(), request=request))
    metrics = httpx.Request("GET", "http://t/metrics")
    sweep.check_response(httpx.Response(200, content=rid.encode(), request=metrics))
    assert [f.split(" in ")[1].split(" (")[0] for f in sweep.findings] == [
        "log app:INFO",
        "response 422 POST /v1/referrals",
        "response 200 GET /metrics",
    ]


@pytest.mark.slow
def test_a_leak_fails_the_whole_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_leaky=f"""
        import logging

        def test_logs_an_id(tmp_path):
            logging.getLogger("app.leaky").info("patient %s", "{resident_id()}")

        def test_server_log(tmp_path):
            (tmp_path / "server.log").write_text("nothing here")
        """
    )
    env_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    pytester._monkeypatch.setenv("PYTHONPATH", env_path)
    result = pytester.runpytest_subprocess("-p", "tests.privacy_plugin", "-q")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*privacy sweep FAILED*", "*app.leaky*", "*2 passed*"])
