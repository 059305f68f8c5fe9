"""Benchmark: creating up-referrals (POST /v1/referrals) against a bare one-INSERT endpoint.

In one run, on a scratch PostgreSQL database (created here, dropped at the end):

1. ``referral-service serve --demo`` (uvicorn, ``--workers`` processes): migrates, loads the demo
   consortia and writes the demo keys. The lead hospital of Zhenghe (ZH-CH) and ZH-TCM get
   100,000 internal-medicine ("03") beds, so no referral is waitlisted during the run.
2. ``bench/bare_app.py``: the same stack (FastAPI, uvicorn, SQLAlchemy async, asyncpg, same
   worker count and pool) with one route that does a single INSERT.
3. The same load generator drives both: ``--connections`` concurrent keep-alive connections
   (httpx, one pool per client process) for ``--requests`` requests or ``--seconds`` seconds,
   whichever ends first, after a short warm-up; then 200 sequential requests on one connection
   (unloaded latency). Every request is a valid up-referral from a Zhenghe clinic (the demo
   clinic keys in turn) with a fresh resident ID and a unique Idempotency-Key; the bare endpoint
   gets the very same bytes and headers.

It prints throughput and latency for each, the create/bare throughput ratio, the CPU used by
each process group during the loaded runs (to see whether the client or the machine is the
limit), every non-201 answer, and a consistency check of the database. Exit status 0 when the
run completed (non-201 answers are reported, not fatal); 1 when it could not run.

    .venv/bin/python bench/create_bench.py [--connections 32] [--seconds 20] [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from benchlib import (
    DEFAULT_PG,
    PYTHON,
    CpuSnapshot,
    Server,
    admin_dsn,
    check_loopback,
    cpu_count,
    create_database,
    drop_database,
    dump_json,
    free_port,
    percentile,
    pg_execute,
    pg_fetch,
    start_server,
    up_referral,
)
from sqlalchemy.engine import make_url

BENCH_DIR = Path(__file__).resolve().parent
REQUEST_TIMEOUT_S = 30.0
BARRIER_TIMEOUT_S = 600.0  # start-up and warm-up of the client processes
DEFAULT_CONSORTIA = "ZHENGHE"
BARE_TABLE = (
    "CREATE TABLE bench_bare (id text PRIMARY KEY, payload text NOT NULL, "
    "created_at timestamptz NOT NULL)"
)


# -- the request ------------------------------------------------------------------------------


def referral_bytes(n: int) -> bytes:
    """A valid up-referral body; ``n`` makes the resident ID unique (up to 25 million)."""
    birth = date(1940, 1, 1) + timedelta(days=(n // 1000) % 25_000)
    body = up_referral(n, birth, "压测患者")
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


# -- load generator (runs in child processes) ---------------------------------------------------


@dataclass(frozen=True)
class LoadSpec:
    base_url: str
    path: str
    keys: tuple[str, ...]
    connections: int
    max_requests: int  # measured requests for this process
    seconds: float  # measured time limit
    warmup: int  # unmeasured requests first, on the same connections
    barrier: Any  # a multiprocessing.Manager Barrier: all client processes and the parent
    index_base: int  # request numbers (resident IDs) start here ...
    stride: int  # ... and step by the number of client processes
    offset: int
    client: str  # "raw" or "httpx"


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    waitlisted: int = 0
    started: float = 0.0
    ended: float = 0.0
    cpu_s: float = 0.0


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client connection (the default load generator).

    On this kind of machine httpx costs milliseconds of client CPU per request, about ten times
    more than this; a cheaper client leaves the CPUs to the servers being measured. It handles
    what uvicorn sends: Content-Length or chunked bodies, ``Connection: close``.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.reader, self.writer
        head = [f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"]
        head.append(f"Content-Length: {len(body)}\r\n")
        head.extend(f"{k}: {v}\r\n" for k, v in headers.items())
        head.append("\r\n")
        try:
            writer.write("".join(head).encode("latin-1") + body)
            status = int((await reader.readline()).split(b" ", 2)[1])
            length, chunked, close = 0, False, False
            for _ in range(200):  # header lines, bounded
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif name == b"connection":
                    close = b"close" in value.lower()
            if chunked:
                parts = []
                for _ in range(1_000_000):  # chunks, bounded
                    size = int((await reader.readline()).split(b";")[0], 16)
                    if size == 0:
                        await reader.readline()
                        break
                    parts.append(await reader.readexactly(size))
                    await reader.readline()
                content = b"".join(parts)
            else:
                content = await reader.readexactly(length)
        except BaseException:
            self.close()
            raise
        if close:
            self.close()
        return status, content

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _drive(spec: LoadSpec) -> LoadResult:
    result = LoadResult()
    warm_counter = iter(range(spec.warmup))
    counter = iter(range(spec.warmup, spec.warmup + spec.max_requests))
    deadline = [float("inf")]
    client: httpx.AsyncClient | None = None
    raw: list[RawConnection] = []
    if spec.client == "httpx":
        limits = httpx.Limits(
            max_connections=spec.connections, max_keepalive_connections=spec.connections
        )
        client = httpx.AsyncClient(base_url=spec.base_url, limits=limits, timeout=REQUEST_TIMEOUT_S)
    else:
        url = httpx.URL(spec.base_url)
        raw = [RawConnection(url.host, url.port or 80) for _ in range(spec.connections)]

    async def send(w: int, content: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if client is not None:
            r = await client.post(spec.path, content=content, headers=headers)
            return r.status_code, r.content
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            return await raw[w].post(spec.path, content, headers)

    async def one(w: int, i: int, record: bool) -> None:
        n = spec.index_base + (i * spec.stride) + spec.offset
        headers = {
            "Authorization": f"Bearer {spec.keys[n % len(spec.keys)]}",
            "Idempotency-Key": uuid.uuid4().hex,
            "Content-Type": "application/json",
        }
        content = referral_bytes(n)
        t0 = time.perf_counter()
        try:
            status, body = await send(w, content, headers)
        except (
            httpx.HTTPError,
            OSError,
            TimeoutError,
            ValueError,
            IndexError,
            asyncio.IncompleteReadError,
        ) as exc:
            if record:
                result.latencies.append(time.perf_counter() - t0)
                result.statuses[f"exception {type(exc).__name__}"] += 1
                if len(result.samples) < 5:
                    result.samples.append(f"{type(exc).__name__}: {exc}")
            return
        elapsed = time.perf_counter() - t0
        if not record:
            return
        result.latencies.append(elapsed)
        result.statuses[str(status)] += 1
        if status != 201 and len(result.samples) < 5:
            result.samples.append(f"{status}: {body[:400].decode(errors='replace')}")
        elif b'"status":"waitlisted"' in body:
            result.waitlisted += 1

    async def warm_worker(w: int) -> None:
        for i in warm_counter:
            await one(w, i, record=False)

    async def worker(w: int) -> None:
        for i in counter:
            if time.perf_counter() >= deadline[0]:
                return
            await one(w, i, record=True)

    try:
        # warm-up: open every connection and fill the service's caches and pools
        if spec.warmup:
            await asyncio.gather(*(warm_worker(w) for w in range(spec.connections)))
        # every client process is warm: start measuring together (the parent takes its CPU
        # snapshot at the same barrier)
        await asyncio.to_thread(spec.barrier.wait, BARRIER_TIMEOUT_S)
        cpu0 = time.process_time()
        result.started = time.time()
        deadline[0] = time.perf_counter() + spec.seconds
        await asyncio.gather(*(worker(w) for w in range(spec.connections)))
        result.ended = time.time()
        result.cpu_s = time.process_time() - cpu0
    finally:
        if client is not None:
            await client.aclose()
        for conn in raw:
            conn.close()
    return result


def run_load(spec: LoadSpec) -> LoadResult:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_drive(spec))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_drive(spec))


@dataclass
class Phase:
    label: str
    connections: int
    processes: int
    result: LoadResult
    cpu: dict[str, float] | None = None
    backends: dict[str, float] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.result.latencies)

    @property
    def wall(self) -> float:
        return max(self.result.ended - self.result.started, 1e-9)

    @property
    def throughput(self) -> float:
        return self.count / self.wall

    def pct(self, q: float) -> float:
        return percentile(sorted(self.result.latencies), q) * 1000

    @property
    def non_201(self) -> dict[str, int]:
        return {k: v for k, v in sorted(self.result.statuses.items()) if k != "201"}

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "connections": self.connections,
            "client_processes": self.processes,
            "requests": self.count,
            "seconds": round(self.wall, 3),
            "throughput_rps": round(self.throughput, 1),
            "p50_ms": round(self.pct(50), 2),
            "p90_ms": round(self.pct(90), 2),
            "p99_ms": round(self.pct(99), 2),
            "max_ms": round(self.pct(100), 2),
            "statuses": dict(self.result.statuses),
            "waitlisted": self.result.waitlisted,
            "client_cpu_s": round(self.result.cpu_s, 2),
            "cpu_cores_used": self.cpu,
            "db_backends_average": self.backends,
            "samples": self.result.samples,
        }


def run_phase(
    label: str,
    base_url: str,
    path: str,
    keys: tuple[str, ...],
    *,
    connections: int,
    processes: int,
    requests: int,
    seconds: float,
    warmup: int,
    index_base: int,
    servers: list[Server],
    client: str,
    db_url: str | None = None,
) -> Phase:
    processes = max(1, min(processes, connections))
    conns = [
        connections // processes + (1 if p < connections % processes else 0)
        for p in range(processes)
    ]
    reqs = [
        requests // processes + (1 if p < requests % processes else 0) for p in range(processes)
    ]
    warm = [warmup // processes + (1 if p < warmup % processes else 0) for p in range(processes)]
    ctx = get_context("spawn")
    manager = ctx.Manager()
    barrier = manager.Barrier(processes + 1, timeout=BARRIER_TIMEOUT_S)
    specs = [
        LoadSpec(
            base_url,
            path,
            keys,
            conns[p],
            reqs[p],
            seconds,
            warm[p],
            barrier,
            index_base,
            processes,
            p,
            client,
        )
        for p in range(processes)
    ]
    with manager, ProcessPoolExecutor(max_workers=processes, mp_context=ctx) as pool:
        futures = [pool.submit(run_load, s) for s in specs]
        # CPU of the servers and PostgreSQL over the measured window: from the moment every
        # client process is warm to the moment the last one finishes
        barrier.wait(BARRIER_TIMEOUT_S)
        before = CpuSnapshot.take(servers)
        waits: Counter[str] = Counter()
        if db_url:
            waits = asyncio.run(sample_backends(db_url, futures, seconds + REQUEST_TIMEOUT_S + 60))
        parts = [f.result(timeout=seconds + REQUEST_TIMEOUT_S + 120) for f in futures]
        after = CpuSnapshot.take(servers)
    merged = LoadResult()
    for part in parts:
        merged.latencies.extend(part.latencies)
        merged.statuses.update(part.statuses)
        merged.samples.extend(part.samples[: 5 - len(merged.samples)])
        merged.waitlisted += part.waitlisted
        merged.cpu_s += part.cpu_s
    merged.started = min(p.started for p in parts)
    merged.ended = max(p.ended for p in parts)
    cpu = after.usage_since(before)
    cpu["client"] = merged.cpu_s / max(merged.ended - merged.started, 1e-9)
    samples = waits.pop("_samples", 0)
    backends = {k: v / samples for k, v in waits.most_common()} if samples else {}
    return Phase(label, connections, processes, merged, cpu, backends)


async def sample_backends(db_url: str, futures: list[Any], limit_s: float) -> Counter[str]:
    """What the database's backends are doing, sampled every 0.25 s while the load runs:
    running a statement, waiting for a lock (which one), or idle in a transaction waiting for
    the application."""
    counts: Counter[str] = Counter()
    name = make_url(db_url).database
    conn = await asyncpg.connect(admin_dsn(db_url), timeout=10)
    try:
        end = time.monotonic() + limit_s
        while time.monotonic() < end and not all(f.done() for f in futures):
            rows = await conn.fetch(
                "SELECT state, wait_event_type, wait_event, count(*) AS n FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid() GROUP BY 1, 2, 3",
                name,
            )
            counts["_samples"] += 1
            for r in rows:
                state = r["state"] or "?"
                if state == "active" and r["wait_event_type"] == "Lock":
                    key = f"waiting for a lock ({r['wait_event']})"
                elif state == "active":
                    key = "running a statement" + (
                        f" ({r['wait_event_type']}:{r['wait_event']})"
                        if r["wait_event_type"]
                        else ""
                    )
                elif state == "idle in transaction":
                    key = "idle in transaction (waiting for the application)"
                else:
                    key = state
                counts[key] += r["n"]
            await asyncio.sleep(0.25)
    finally:
        await conn.close()
    return counts


# -- setup ------------------------------------------------------------------------------------


def institutions(base_url: str, key: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    headers = {"Authorization": f"Bearer {key}"}
    for _ in range(1000):  # pages of 200: bounded
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        r = httpx.get(f"{base_url}/v1/institutions", params=params, headers=headers, timeout=30)
        r.raise_for_status()
        body = r.json()
        out.extend(body["items"])
        cursor = body["next_cursor"]
        if not cursor:
            break
    return out


def bed_targets(items: list[dict[str, Any]], consortium_ids: set[str]) -> dict[str, str]:
    """code -> id of the hospitals of these consortia that offer internal medicine ("03")."""
    return {
        i["code"]: i["id"]
        for i in items
        if i["consortium_id"] in consortium_ids
        and i["level"] in ("secondary", "tertiary")
        and "03" in i["specialties"]
    }


def give_beds(base_url: str, admin_key: str, targets: dict[str, str]) -> None:
    for code, institution_id in targets.items():
        census = {
            "as_of": datetime.now(UTC).isoformat(),
            "beds": [{"specialty_code": "03", "total": 100_000, "occupied": 0}],
        }
        r = httpx.put(
            f"{base_url}/v1/institutions/{institution_id}/capacity",
            json=census,
            headers={"Authorization": f"Bearer {admin_key}"},
            timeout=30,
        )
        if r.status_code != 200:
            raise RuntimeError(f"capacity for {code}: {r.status_code} {r.text[:400]}")


def _lead_codes(keys: list[dict[str, Any]], consortia: set[str]) -> set[str]:
    """Institution codes of the leads of these consortia (the council keys name them)."""
    return {
        k["institution_code"]
        for k in keys
        if k["role"] == "council" and k["consortium_code"] in consortia
    }


def log_problems(server: Server) -> list[str]:
    """Lines of the server's log that mention an error (JSON or plain: uvicorn's worker
    processes may log through Python's last-resort handler, which prints the bare message)."""
    pattern = re.compile(r"(?i)\b(error|exception|traceback|critical)\b")
    return [ln[:300] for ln in server.log().splitlines() if pattern.search(ln)]


async def verify(url: str, created: int) -> list[str]:
    """Facts from the database after the run."""
    out = []
    rows = await pg_fetch(
        url,
        "SELECT r.status, coalesce(i.code, '-') AS target, count(*) AS n FROM referral r "
        "LEFT JOIN institution i ON i.id = r.target_institution_id "
        "GROUP BY 1, 2 ORDER BY 3 DESC",
    )
    total = sum(r["n"] for r in rows)
    out.append(
        f"referrals in the database: {total} (201 answers counted by the client, warm-up "
        f"included: {created}); by status and target: "
        + ", ".join(f"{r['status']}/{r['target']}={r['n']}" for r in rows)
    )
    beds = await pg_fetch(
        url,
        "SELECT i.code, b.total, b.occupied, b.held FROM bed_capacity b JOIN institution i "
        "ON i.id = b.institution_id WHERE b.specialty_code = '03' AND b.total = 100000 "
        "ORDER BY i.code",
    )
    out.append(
        "beds 03 after the run: "
        + ", ".join(f"{b['code']} total={b['total']} held={b['held']}" for b in beds)
    )
    idem = await pg_fetch(url, "SELECT state, count(*) AS n FROM idempotency_record GROUP BY 1")
    out.append("idempotency records: " + ", ".join(f"{r['state']}={r['n']}" for r in idem))
    bare = await pg_fetch(url, "SELECT count(*) AS n FROM bench_bare")
    out.append(f"bench_bare rows: {bare[0]['n']}")
    return out


# -- report -----------------------------------------------------------------------------------


def print_report(phases: dict[str, Phase], args: argparse.Namespace, facts: list[str]) -> None:
    create, bare = phases["create"], phases["bare"]
    create1, bare1 = phases["create_unloaded"], phases["bare_unloaded"]
    print()
    print(
        f"machine: {cpu_count()} CPUs usable; server workers: {args.workers} each; "
        f"client: {args.client}, {args.client_procs} process(es); PostgreSQL on 127.0.0.1"
    )
    print()
    head = (
        f"{'run':<26}{'conns':>6}{'requests':>10}{'non-201':>9}{'req/s':>10}"
        f"{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    )
    print(head)
    print("-" * len(head))
    for label, ph in (
        ("create POST /v1/referrals", create),
        ("bare   POST /bare", bare),
        ("create, unloaded", create1),
        ("bare, unloaded", bare1),
    ):
        bad = sum(ph.non_201.values())
        print(
            f"{label:<26}{ph.connections:>6}{ph.count:>10}{bad:>9}{ph.throughput:>10.1f}"
            f"{ph.pct(50):>9.2f}{ph.pct(90):>9.2f}{ph.pct(99):>9.2f}{ph.pct(100):>9.2f}"
        )
    print()
    ratio = create.throughput / bare.throughput if bare.throughput else float("nan")
    print(
        f"throughput ratio create/bare at {args.connections} connections: {ratio:.3f} "
        f"({create.throughput:.1f} / {bare.throughput:.1f} req/s)"
    )
    print(
        f"unloaded p50 (1 connection, {args.unloaded_requests} sequential): "
        f"create {create1.pct(50):.2f} ms, bare {bare1.pct(50):.2f} ms "
        f"(ratio {create1.pct(50) / bare1.pct(50):.2f})"
    )
    print()
    print("CPU during the loaded runs (cores busy on average; machine = share of all CPUs):")
    for name, ph in (("create", create), ("bare", bare)):
        c = ph.cpu or {}
        ours = sum(c.get(k, 0) for k in ("client", "service", "bare", "postgres"))
        other = max(0.0, c.get("machine_busy_share", 0) * cpu_count() - ours)
        print(
            f"  {name:<7} client {c.get('client', 0):.2f}  service {c.get('service', 0):.2f}  "
            f"bare {c.get('bare', 0):.2f}  postgres {c.get('postgres', 0):.2f}  "
            f"other processes {other:.2f}  "
            f"machine {c.get('machine_busy_share', 0) * 100:.0f}% busy "
            f"(steal {c.get('steal_share', 0) * 100:.0f}%)"
        )
        if other > 0.25:
            print(
                f"  note: other processes used {other:.2f} cores during the {name} run: "
                "the figures are disturbed; run again on a quiet machine."
            )
    for name, ph in (("create", create), ("bare", bare)):
        c = ph.cpu or {}
        if c.get("client", 0) > 0.85 * max(args.client_procs, 1):
            print(
                f"  note: in the {name} run the client used {c['client']:.2f} cores with "
                f"{args.client_procs} process(es): the client may be the limit "
                "(try --client-procs 2)."
            )
        if c.get("machine_busy_share", 0) > 0.9:
            print(
                f"  note: in the {name} run the machine was {c['machine_busy_share']:.0%} busy: "
                "client, servers and PostgreSQL share the CPUs, so the figures are CPU-bound."
            )
    print()
    print("database backends during the loaded runs (average number, sampled every 0.25 s):")
    for name, ph in (("create", create), ("bare", bare)):
        text = ", ".join(f"{k} {v:.1f}" for k, v in ph.backends.items()) or "-"
        print(f"  {name:<7} {text}")
    print()
    anything = False
    for label, ph in phases.items():
        if ph.non_201:
            anything = True
            print(f"non-201 answers in {label}: {ph.non_201}")
            for s in ph.result.samples:
                print(f"    {s}")
        if ph.result.waitlisted:
            anything = True
            print(f"waitlisted referrals in {label}: {ph.result.waitlisted}")
    if not anything:
        print("every measured request answered 201 (none waitlisted)")
    for fact in facts:
        print(fact)


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=32, help="concurrent connections (32)")
    p.add_argument(
        "--requests", type=int, default=20_000, help="measured requests per loaded run (20000)"
    )
    p.add_argument("--seconds", type=float, default=20, help="time limit per loaded run (20)")
    p.add_argument("--workers", type=int, default=2, help="uvicorn workers per server (2)")
    p.add_argument("--warmup", type=int, default=300, help="unmeasured requests first (300)")
    p.add_argument("--unloaded-requests", type=int, default=200, help="sequential requests (200)")
    p.add_argument("--client-procs", type=int, default=1, help="load-generator processes (1)")
    p.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="load generator: raw (minimal HTTP/1.1 keep-alive client, default) or httpx "
        "(httpx.AsyncClient with one pool of --connections)",
    )
    p.add_argument(
        "--consortia",
        default=DEFAULT_CONSORTIA,
        help="demo consortia whose clinics send the referrals: comma-separated codes or 'all' "
        f"(default {DEFAULT_CONSORTIA}: every referral goes to the same lead hospital)",
    )
    p.add_argument("--pool-size", type=int, default=10, help="DB pool size per worker (10)")
    p.add_argument("--pg-url", default=DEFAULT_PG, help=f"server to use ({DEFAULT_PG})")
    p.add_argument("--keep-db", action="store_true", help="keep the database and the logs")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = p.parse_args(argv)
    if not (1 <= args.connections <= 1024):
        p.error("--connections must be 1..1024")
    if not (1 <= args.requests <= 90_000):
        p.error("--requests must be 1..90000 (ZH-CH has 100,000 beds)")
    if not (0 < args.seconds <= 600):
        p.error("--seconds must be in (0, 600]")
    if not (1 <= args.unloaded_requests <= 10_000) or not (0 <= args.warmup <= 10_000):
        p.error("--unloaded-requests 1..10000, --warmup 0..10000")
    check_loopback(args.pg_url)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="referral-create-bench-"))
    db_name = f"referral_bench_{uuid.uuid4().hex[:10]}"
    servers: list[Server] = []
    url = None
    ok = False
    try:
        url = asyncio.run(create_database(args.pg_url, db_name))
        print(f"database {db_name}; logs in {workdir}", flush=True)
        keys_file = workdir / "demo-keys.json"
        port = free_port()
        service = start_server(
            "service",
            [PYTHON, "-m", "app.cli", "serve", "--demo"],
            {
                "REFERRAL_DATABASE_URL": url,
                "REFERRAL_DEMO_MODE": "true",
                "REFERRAL_DEMO_KEYS_FILE": str(keys_file),
                "REFERRAL_WORKERS": str(args.workers),
                "REFERRAL_LOG_LEVEL": "warning",
                "REFERRAL_HOST": "127.0.0.1",
                "REFERRAL_PORT": str(port),
                "REFERRAL_DB_POOL_SIZE": str(args.pool_size),
            },
            workdir / "service.log",
            port=port,
        )
        servers.append(service)
        keys = json.loads(keys_file.read_text(encoding="utf-8"))["keys"]
        admin = next(k["key"] for k in keys if k["role"] == "admin")
        wanted = {c for k in keys if (c := k.get("consortium_code"))}
        if args.consortia != "all":
            wanted = set(args.consortia.split(","))
        clinic_keys = tuple(
            k["key"] for k in keys if k["role"] == "clinic" and k["consortium_code"] in wanted
        )
        if not clinic_keys:
            raise RuntimeError(f"no demo clinic keys for {sorted(wanted)}")
        items = institutions(service.base_url, admin)
        consortium_ids = {
            i["consortium_id"]
            for i in items
            if i["is_lead"] and i["consortium_id"] and i["code"] in _lead_codes(keys, wanted)
        }
        targets = bed_targets(items, consortium_ids)
        give_beds(service.base_url, admin, targets)
        print(
            f"service up on {service.base_url} ({args.workers} workers); "
            f"{len(clinic_keys)} clinic keys of {', '.join(sorted(wanted))}; "
            f"100,000 beds '03' at {', '.join(sorted(targets))}",
            flush=True,
        )

        asyncio.run(pg_execute(url, BARE_TABLE))
        bare_port = free_port()
        bare = start_server(
            "bare",
            [
                PYTHON,
                str(BENCH_DIR / "bare_app.py"),
                "--port",
                str(bare_port),
                "--workers",
                str(args.workers),
            ],
            {"BENCH_DATABASE_URL": url, "BENCH_DB_POOL_SIZE": str(args.pool_size)},
            workdir / "bare.log",
            port=bare_port,
        )
        servers.append(bare)
        print(f"bare endpoint up on {bare.base_url} ({args.workers} workers)", flush=True)

        idle0 = CpuSnapshot.take(servers)
        time.sleep(2)
        quiet = CpuSnapshot.take(servers).usage_since(idle0)["machine_busy_share"]
        print(f"machine busy before the runs (servers idle): {quiet:.0%} of {cpu_count()} CPUs")
        if quiet > 0.15:
            print("  note: something else is using the CPUs; the figures will be disturbed")
        common: dict[str, Any] = {"processes": 1, "servers": servers, "client": args.client}
        phases: dict[str, Phase] = {}
        print(f"unloaded: {args.unloaded_requests} sequential requests each ...", flush=True)
        phases["create_unloaded"] = run_phase(
            "create_unloaded",
            service.base_url,
            "/v1/referrals",
            clinic_keys,
            connections=1,
            requests=args.unloaded_requests,
            seconds=120,
            warmup=20,
            index_base=0,
            **common,
        )
        phases["bare_unloaded"] = run_phase(
            "bare_unloaded",
            bare.base_url,
            "/bare",
            clinic_keys,
            connections=1,
            requests=args.unloaded_requests,
            seconds=120,
            warmup=20,
            index_base=0,
            **common,
        )
        common["processes"] = args.client_procs
        for label, srv, path, base in (
            ("create", service, "/v1/referrals", 1_000_000),
            ("bare", bare, "/bare", 1_000_000),
        ):
            print(
                f"loaded: {label}, {args.connections} connections, up to {args.requests} "
                f"requests or {args.seconds:g} s ...",
                flush=True,
            )
            phases[label] = run_phase(
                label,
                srv.base_url,
                path,
                clinic_keys,
                connections=args.connections,
                requests=args.requests,
                seconds=args.seconds,
                warmup=args.warmup,
                index_base=base,
                db_url=url,
                **common,
            )

        created = (
            sum(
                ph.result.statuses.get("201", 0)
                for key, ph in phases.items()
                if key.startswith("create")
            )
            + 20
            + args.warmup
        )
        facts = asyncio.run(verify(url, created))
        for srv in servers:
            problems = log_problems(srv)
            facts.append(f"{srv.name} log: {len(problems)} error/traceback lines")
            facts.extend(f"    {ln}" for ln in problems[:5])
        print_report(phases, args, facts)
        if args.json:
            dump_json(
                args.json,
                {
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "cpus": cpu_count(),
                    "phases": {k: v.as_dict() for k, v in phases.items()},
                    "facts": facts,
                },
            )
        ok = True
        return 0
    except Exception as exc:  # report, clean up, exit 1
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        for srv in reversed(servers):
            srv.stop()
        if url is not None and not args.keep_db:
            asyncio.run(drop_database(args.pg_url, db_name))
        if args.keep_db or not ok:
            print(f"kept: logs in {workdir}" + (f", database {db_name}" if args.keep_db else ""))
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
