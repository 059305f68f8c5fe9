"""Build the wheel and start the service from it the way the container image does.

The Dockerfile installs the wheel, runs `referral-service migrate` as a separate one-shot
command, and its CMD is `referral-service serve`. No container engine runs here, so this
test performs the same steps with the same commands on the host.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import free_port, start
from tests.support import secret_env

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_wheel_installs_and_serves_like_the_image(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(dist.glob("referral_service-*.whl"))
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "REFERRAL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'image.db'}",
        **secret_env(),
        "REFERRAL_DEMO_MODE": "false",
    }
    run_dir = tmp_path / "run"  # not the source tree: only the wheel's code is importable
    run_dir.mkdir()
    where = subprocess.run(
        [sys.executable, "-c", "import app, migrations; print(app.__file__, migrations.__file__)"],
        env=env,
        cwd=run_dir,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert str(site) in where and str(ROOT / "app") not in where
    script = [sys.executable, str(site / "bin" / "referral-service")]
    # without the secrets the image refuses to start, with a clear message
    bare = {k: v for k, v in env.items() if k != "REFERRAL_API_KEY_PEPPER"}
    refused = subprocess.run(
        [*script, "serve"], env=bare, cwd=run_dir, capture_output=True, text=True
    )
    assert refused.returncode == 2 and "REFERRAL_API_KEY_PEPPER" in refused.stderr
    subprocess.run([*script, "migrate"], env=env, cwd=run_dir, check=True, capture_output=True)
    server = start(
        [*script, "serve"],
        {k: env[k] for k in env if k.startswith(("REFERRAL_", "PYTHONPATH"))},
        tmp_path / "image.log",
        port=free_port(),
        cwd=run_dir,
    )
    try:
        assert httpx.get(server.base_url + "/livez").json() == {"status": "ok"}
        assert httpx.get(server.base_url + "/v1/institutions").status_code == 401
        assert httpx.get(server.base_url + "/static/swagger-ui.css").status_code == 200
    finally:
        assert server.stop() in (0, -signal.SIGTERM)
