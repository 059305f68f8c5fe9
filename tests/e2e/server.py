"""Start the service as a real process (uvicorn) on a free loopback port."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def stop(self, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def start(
    args: Sequence[str],
    env: dict[str, str],
    log_path: Path,
    *,
    port: int,
    cwd: Path | None = None,
    ready_path: str = "/readyz",
    deadline_s: float = 60,
) -> Server:
    full_env = {**os.environ, **env, "REFERRAL_PORT": str(port), "REFERRAL_HOST": "127.0.0.1"}
    log = log_path.open("wb")
    process = subprocess.Popen(
        list(args), env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd
    )
    server = Server(process, f"http://127.0.0.1:{port}", log_path)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log()}")
        try:
            if httpx.get(server.base_url + ready_path, timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # polling for start-up, not papering over a race
    server.stop()
    raise RuntimeError(f"server not ready in {deadline_s}s:\n{server.log()}")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", *args]


def run_two_workers(
    db_url: str, tmp_path: Path, scenario: Callable[[str], Coroutine[Any, Any, None]]
) -> None:
    """``scenario(base_url)`` against the service with 2 workers on ``db_url`` (demo data
    already there, the test keys' secrets); the log must hold no traceback."""
    from tests.support import secret_env

    server = start(
        cli("serve"),
        {
            "REFERRAL_DATABASE_URL": db_url,
            "REFERRAL_DEMO_MODE": "false",
            **secret_env(),
            "REFERRAL_WORKERS": "2",
            "REFERRAL_DB_POOL_SIZE": "10",
        },
        tmp_path / "server.log",
        port=free_port(),
    )
    try:
        asyncio.run(scenario(server.base_url))
    finally:
        server.stop()
    assert "Traceback" not in server.log()
