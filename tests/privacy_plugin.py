"""Privacy sweep over the whole test run: no patient data in logs, metrics or error bodies.

Registered in tests/conftest.py (``pytest_plugins``). For the whole session it

* attaches a handler to the root logger and lowers the root level to INFO, the service's
  default, so its access log, sweeper, relay and error records are produced and seen (set
  ``PRIVACY_SWEEP_LOG_LEVEL=DEBUG`` to include debug records of the service and its libraries,
  about 60 % slower); it checks every record: the message, the extra fields and the message
  of an attached exception;
* wraps ``httpx.Client.send`` / ``httpx.AsyncClient.send`` (every test client, in-process or
  over HTTP) and checks every error response body (status >= 400) and every ``/metrics``
  body it reads;
* at the end reads every ``*.log`` file under the session's temporary directory: the logs of
  the service processes the e2e tests start (tests/e2e/server.py writes them there).

A hit is an 18-character resident ID number (17 digits and a check character, not part of a
longer token) or a patient name, diagnosis text or insurance number of tests/factories.py.
Any hit fails the run (exit status 1) and is listed, masked, with the test that produced it.

Not covered: logs of processes that write outside the session's temporary directory, and
success bodies (the source and target of a referral legitimately see the ID in full).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import referral_body

ID_PATTERN = re.compile(r"(?<![0-9A-Za-z.])\d{17}[\dXx](?![0-9A-Za-z])")
_SAMPLE = referral_body()
FIXTURE_SECRETS: tuple[str, ...] = (
    _SAMPLE["patient"]["name"],
    _SAMPLE["patient"]["insurance_number"],
    _SAMPLE["diagnosis"]["text"],
)
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
MAX_FINDINGS = 50


@dataclass
class Sweep:
    """Collects where patient data showed up; thread-safe (uvicorn threads log too)."""

    secrets: tuple[str, ...] = FIXTURE_SECRETS
    findings: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    current_test: str = "<no test>"
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, source: str, text: str) -> bool:
        """Record a finding when ``text`` holds patient data; True when it does."""
        kind = source.split(" ", 1)[0]
        with self._lock:
            self.checked[kind] = self.checked.get(kind, 0) + 1
        what = None
        hit = ID_PATTERN.search(text)
        if hit:
            what = f"resident ID {hit.group()[:3]}***{hit.group()[-2:]}"
        else:
            what = next((f"fixture text {s[:2]}…" for s in self.secrets if s in text), None)
        if what is None:
            return False
        with self._lock:
            if len(self.findings) < MAX_FINDINGS:
                self.findings.append(f"{what} in {source} (during {self.current_test})")
        return True

    def check_record(self, record: logging.LogRecord) -> None:
        try:
            parts = [record.getMessage()]
        except Exception:  # a broken format string is not our concern here
            parts = [str(record.msg)]
        parts += [
            str(v)
            for k, v in record.__dict__.items()
            if k not in _STANDARD_ATTRS and isinstance(v, (str, int, float))
        ]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(repr(record.exc_info[1]))
        self.check(f"log {record.name}:{record.levelname}", "\n".join(parts))

    def check_response(self, response: httpx.Response) -> None:
        path = response.request.url.path
        if response.status_code < 400 and not path.endswith("/metrics"):
            return
        try:
            body = response.content
        except httpx.ResponseNotRead:  # streamed and not read by the test: nothing seen
            return
        route = f"{response.request.method} {path}"
        self.check(f"response {response.status_code} {route}", body.decode("utf-8", "replace"))

    def check_files(self, root: Path) -> None:
        for path in sorted(root.rglob("*.log")):
            if path.is_file():
                text = path.read_text(encoding="utf-8", errors="replace")
                self.check(f"file {path.relative_to(root)}", text)


class _Handler(logging.Handler):
    def __init__(self, sweep: Sweep) -> None:
        super().__init__(logging.DEBUG)
        self.sweep = sweep

    def emit(self, record: logging.LogRecord) -> None:
        self.sweep.check_record(record)


SWEEP = Sweep()
_state: dict[str, Any] = {}


def pytest_configure(config: pytest.Config) -> None:
    handler = _Handler(SWEEP)
    root = logging.getLogger()
    _state.update(handler=handler, level=root.level)
    root.addHandler(handler)
    level = logging.getLevelName(os.environ.get("PRIVACY_SWEEP_LOG_LEVEL", "INFO").upper())
    root.setLevel(min(level if isinstance(level, int) else logging.INFO, root.level or 100))

    sync_send = httpx.Client.send
    async_send = httpx.AsyncClient.send

    def send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = sync_send(self, request, **kwargs)
        SWEEP.check_response(response)
        return response

    async def asend(
        self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any
    ) -> httpx.Response:
        response = await async_send(self, request, **kwargs)
        SWEEP.check_response(response)
        return response

    _state.update(sync_send=sync_send, async_send=async_send)
    httpx.Client.send = send  # type: ignore[method-assign]
    httpx.AsyncClient.send = asend  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    if "handler" in _state:
        root = logging.getLogger()
        root.removeHandler(_state["handler"])
        root.setLevel(_state["level"])
        httpx.Client.send = _state["sync_send"]  # type: ignore[method-assign]
        httpx.AsyncClient.send = _state["async_send"]  # type: ignore[method-assign]
        _state.clear()


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    SWEEP.current_test = nodeid
    root = logging.getLogger()
    if "handler" in _state and _state["handler"] not in root.handlers:
        root.addHandler(_state["handler"])  # a test replaced the root handlers (JSON logging)


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    SWEEP.current_test = "<between tests>"


@pytest.fixture(scope="session", autouse=True)
def _privacy_sweep_basetemp(tmp_path_factory: pytest.TempPathFactory) -> None:
    _state["basetemp"] = tmp_path_factory.getbasetemp()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    basetemp = _state.get("basetemp")
    SWEEP.current_test = "<session end>"
    if isinstance(basetemp, Path) and basetemp.is_dir():
        SWEEP.check_files(basetemp)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    names = {"log": "log records", "response": "error/metrics bodies", "file": "log files"}
    counts = ", ".join(f"{n} {names.get(k, k)}" for k, n in sorted(SWEEP.checked.items()))
    if not SWEEP.findings:
        if reporter is not None:
            reporter.write_line(f"privacy sweep: no patient data in {counts or 'nothing'}")
        return
    if reporter is not None:
        reporter.write_sep("=", "privacy sweep FAILED: patient data in logs or error bodies")
        for finding in SWEEP.findings:
            reporter.write_line(finding)
        reporter.write_line(f"(checked {counts})")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
