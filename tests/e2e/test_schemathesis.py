"""Schemathesis against the committed OpenAPI document, on a real uvicorn process in demo mode.

All four phases (examples, coverage, fuzzing, stateful) with every check, a fixed seed and a
bounded number of examples per operation, as a clinic of the demo data; 0 failures expected.
Run it by hand with more examples: SCHEMATHESIS_MAX_EXAMPLES=200 pytest -s -k schemathesis.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import cli, free_port, start
from tests.factories import referral_body

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "openapi" / "openapi.json"
SEED = 1
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))
PHASES = "examples,coverage,fuzzing,stateful"
CALLER = "demo hospital ZH-CH"  # the ZHENGHE lead hospital: the target of the seeded referrals
SEEDER = "demo clinic ZH-THC-TS"  # a township health centre of the same consortium

CONFIG = """
[cache]
enabled = false
"""


def schemathesis(*args: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from schemathesis.cli import schemathesis; schemathesis()",
        *args,
    ]


def seed_referrals(base_url: str, clinic_key: str) -> None:
    """Referrals to the caller's hospital, so that list answers give fuzzing real ids."""
    h = {"Authorization": f"Bearer {clinic_key}"}
    for n, urgency in enumerate(("routine", "urgent", "emergency")):
        r = httpx.post(
            base_url + "/v1/referrals",
            json=referral_body(urgency=urgency),
            headers={**h, "Idempotency-Key": f"seed-{n}"},
        )
        assert r.status_code == 201, r.text


def test_schemathesis_all_phases_no_failures(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    server = start(
        cli("serve", "--demo"),
        {
            "REFERRAL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'st.db'}",
            "REFERRAL_DEMO_KEYS_FILE": str(keys_file),
            "REFERRAL_RATE_LIMIT_PER_SECOND": "0",
        },
        tmp_path / "server.log",
        port=free_port(),
    )
    try:
        keys = {k["name"]: k["key"] for k in json.loads(keys_file.read_text("utf-8"))["keys"]}
        key = keys[CALLER]
        seed_referrals(server.base_url, keys[SEEDER])
        config = tmp_path / "schemathesis.toml"
        config.write_text(CONFIG, encoding="utf-8")
        run = subprocess.run(
            schemathesis(
                "--config-file",
                str(config),
                "run",
                str(OPENAPI),
                "--url",
                server.base_url,
                "--header",
                f"Authorization: Bearer {key}",
                "--seed",
                str(SEED),
                "--phases",
                PHASES,
                "--max-examples",
                str(MAX_EXAMPLES),
                "--checks",
                "all",
                "--workers",
                "1",
                "--generation-database",
                "none",
                "--no-color",
            ),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.stop()
    (tmp_path / "schemathesis.txt").write_text(run.stdout, encoding="utf-8")
    print(run.stdout[-20_000:])
    print(run.stderr[-5_000:], file=sys.stderr)
    summary = [line for line in run.stdout.splitlines() if line.startswith("=")]
    assert run.returncode == 0, "\n".join(summary) or run.stdout[-5_000:] + run.stderr[-5_000:]
    assert " passed" in summary[-1] and "failure" not in summary[-1], summary[-1]
