"""Shared helpers for the benchmarks: scratch databases, server processes, CPU accounting."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
PYTHON = sys.executable
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
#: The service's per-key rate limit off (app/config.py, app/api/ratelimit.py): a benchmark sends
#: far more than 20 requests a second with one key (the census of 1,000 hospitals, the timed
#: requests) and would measure 429 answers instead of the service.
NO_RATE_LIMIT = {"REFERRAL_RATE_LIMIT_PER_SECOND": "0", "REFERRAL_RATE_LIMIT_BURST": "0"}
_TICKS = os.sysconf("SC_CLK_TCK")


# -- databases ---------------------------------------------------------------------------------


def admin_dsn(url: str) -> str:
    """A plain libpq DSN (for asyncpg) from a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def database_url(base_url: str, name: str) -> str:
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def check_loopback(url: str) -> None:
    host = make_url(url).host or "127.0.0.1"
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to use a non-loopback database host: {host}")


async def pg_execute(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(admin_dsn(url), timeout=10)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


async def pg_fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(admin_dsn(url), timeout=10)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def new_database_name(prefix: str = "referral_bench") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def create_database(base_url: str, name: str) -> str:
    await pg_execute(base_url, f'CREATE DATABASE "{name}"')
    return database_url(base_url, name)


async def drop_database(base_url: str, name: str) -> None:
    await pg_execute(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 25) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                # the server's own process group (start_new_session), i.e. only what we started
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        return int(self.process.returncode)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def start_server(
    name: str,
    args: Sequence[str],
    env: dict[str, str],
    log_path: Path,
    *,
    port: int,
    ready_path: str = "/readyz",
    deadline_s: float = 120,
) -> Server:
    log = log_path.open("wb")
    process = subprocess.Popen(
        list(args),
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )
    server = Server(name, process, f"http://127.0.0.1:{port}", log_path)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited early:\n{server.log()[-4000:]}")
        try:
            if httpx.get(server.base_url + ready_path, timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{name} not ready in {deadline_s}s:\n{server.log()[-4000:]}")


def run_cli(args: Sequence[str], env: dict[str, str], timeout: float = 600) -> str:
    """Run ``python -m app.cli ARGS`` and return its stdout (raise with its output on failure)."""
    done = subprocess.run(
        [PYTHON, "-m", "app.cli", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"referral-service {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


# -- CPU accounting (Linux /proc) -------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int, float, float] | None:
    """(comm, ppid, own cpu seconds, reaped children's cpu seconds)"""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    own = (int(fields[11]) + int(fields[12])) / _TICKS
    children = (int(fields[13]) + int(fields[14])) / _TICKS
    return comm, ppid, own, children


def _all_stats() -> dict[int, tuple[str, int, float, float]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                out[int(entry)] = st
    return out


def tree_cpu(root: int, stats: dict[int, tuple[str, int, float, float]] | None = None) -> float:
    """CPU seconds of ``root`` and its live descendants (plus what they reaped)."""
    stats = stats if stats is not None else _all_stats()
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        st = stats.get(pid)
        if st is not None:
            total += st[2] + st[3]
        todo.extend(children.get(pid, ()))
    return total


def postgres_cpu(stats: dict[int, tuple[str, int, float, float]] | None = None) -> float:
    """CPU seconds of every process named ``postgres`` (server and backends) on this host."""
    stats = stats if stats is not None else _all_stats()
    return sum(own + reaped for comm, _, own, reaped in stats.values() if comm == "postgres")


def machine_jiffies() -> tuple[int, int, int]:
    """(busy, total, steal) jiffies over all CPUs, from /proc/stat. Steal (time the hypervisor
    gave to other guests) is counted as busy: it was not available to this machine."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]  # idle + iowait
    total = sum(parts[:8])
    return total - idle, total, parts[7]


@dataclass
class CpuSnapshot:
    at: float
    servers: dict[str, float]
    postgres: float
    machine: tuple[int, int, int]

    @classmethod
    def take(cls, servers: Sequence[Server]) -> CpuSnapshot:
        stats = _all_stats()
        return cls(
            time.monotonic(),
            {s.name: tree_cpu(s.pid, stats) for s in servers},
            postgres_cpu(stats),
            machine_jiffies(),
        )

    def usage_since(self, before: CpuSnapshot) -> dict[str, float]:
        """Per component: cores used on average (1.0 = one core fully busy)."""
        wall = max(self.at - before.at, 1e-9)
        out = {name: (cpu - before.servers[name]) / wall for name, cpu in self.servers.items()}
        out["postgres"] = (self.postgres - before.postgres) / wall
        busy = self.machine[0] - before.machine[0]
        total = max(self.machine[1] - before.machine[1], 1)
        out["machine_busy_share"] = busy / total
        out["steal_share"] = (self.machine[2] - before.machine[2]) / total
        return out


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(q / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def dump_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def up_referral(n: int, birth: date, patient_name: str) -> dict[str, Any]:
    """A valid inpatient internal-medicine ("03") up-referral from a Zhenghe clinic; ``n`` and
    ``birth`` make the resident ID (and so the patient) unique."""
    from app.domain.identity import make_resident_id

    return {
        "patient": {
            "name": patient_name,
            "resident_id": make_resident_id("350725", birth, n % 1000),
            "insurance_scheme": "urban_rural_resident",
            "insurance_number": f"INS-{n:09d}",
        },
        "diagnosis": {"icd10": "I63.9", "text": "脑梗死"},
        "specialty_code": "03",
        "care_type": "inpatient",
        "urgency": "urgent",
        "clinical_summary": "Benchmark referral.",
        "referring_doctor": {"name": "王医生", "id": "doc-bench"},
    }
