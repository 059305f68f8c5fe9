"""A 500 leaves the keep-alive connection usable: a real uvicorn, one client connection.

The app is the service's own (``create_app``) with one extra route that raises, the way any
unexpected exception would; uvicorn runs in a thread of the test process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from app.main import create_app
from tests.e2e.server import free_port
from tests.support import settings_for

pytestmark = pytest.mark.slow


@pytest.fixture(params=["httptools", "h11"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    app = create_app(settings_for(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}"))

    async def raises() -> None:
        raise RuntimeError("secret-marker-7f3a")

    app.add_api_route("/test-only/raises", raises)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", http=request.param, log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)  # polling for start-up
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_internal_error_answers_problem_and_keeps_the_connection(served: str) -> None:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(base_url=served, limits=limits, timeout=5) as client:
        failed = client.get("/test-only/raises")
        assert failed.status_code == 500
        assert failed.headers["content-type"] == "application/problem+json"
        body = failed.json()
        assert body["type"].endswith("/internal-error") and body["request_id"]
        assert "secret-marker-7f3a" not in failed.text  # the exception's message is not echoed
        closes = failed.headers.get("connection", "").lower() == "close"
        after = client.get("/livez")  # the same connection, unless the server said close
        assert after.status_code == 200 and after.json() == {"status": "ok"}
        if not closes:
            assert after.extensions["network_stream"] is failed.extensions["network_stream"]
