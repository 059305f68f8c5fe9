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

import httpx
from benchlib import (
    DEFAULT_PG,
    PYTHON,
    CpuSnapshot,
    Server,
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
)

from app.domain.identity import make_resident_id

BENCH_DIR = Path(__file__).resolve().parent
REQUEST_TIMEOUT_S = 30.0
CONSORTIUM = "ZHENGHE"
BED_TARGETS = ("ZH-CH", "ZH-TCM")  # the lead first; ZH-TCM is the next member for "03"
BARE_TABLE = (
    "CREATE TABLE bench_bare (id text PRIMARY KEY, payload text NOT NULL, "
    "created_at timestamptz NOT NULL)"
)


# -- the request ------------------------------------------------------------------------------


def referral_bytes(n: int) -> bytes:
    """A valid up-referral body; ``n`` makes the resident ID unique (up to 25 million)."""
    birth = date(1940, 1, 1) + timedelta(days=(n // 1000) % 25_000)
    body = {
        "patient": {
            "name": "压测患者",
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
    start_at: float  # time.time() at which measuring starts (all client processes together)
    index_base: int  # request numbers (resident IDs) start here ...
    stride: int  # ... and step by the number of client processes
    offset: int


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    waitlisted: int = 0
    started: float = 0.0
    ended: float = 0.0
    cpu_s: float = 0.0


async def _drive(spec: LoadSpec) -> LoadResult:
    result = LoadResult()
    limits = httpx.Limits(
        max_connections=spec.connections, max_keepalive_connections=spec.connections
    )
    warm_counter = iter(range(spec.warmup))
    counter = iter(range(spec.warmup, spec.warmup + spec.max_requests))
    deadline = [float("inf")]

    async with httpx.AsyncClient(
        base_url=spec.base_url, limits=limits, timeout=REQUEST_TIMEOUT_S
    ) as client:

        async def one(i: int, record: bool) -> None:
            n = spec.index_base + (i * spec.stride) + spec.offset
            headers = {
                "Authorization": f"Bearer {spec.keys[n % len(spec.keys)]}",
                "Idempotency-Key": uuid.uuid4().hex,
                "Content-Type": "application/json",
            }
            content = referral_bytes(n)
            t0 = time.perf_counter()
            try:
                r = await client.post(spec.path, content=content, headers=headers)
            except httpx.HTTPError as exc:
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
            result.statuses[str(r.status_code)] += 1
            if r.status_code != 201 and len(result.samples) < 5:
                result.samples.append(f"{r.status_code}: {r.text[:400]}")
            elif b'"status":"waitlisted"' in r.content:
                result.waitlisted += 1

        async def warm_worker() -> None:
            for i in warm_counter:
                await one(i, record=False)

        async def worker() -> None:
            for i in counter:
                if time.perf_counter() >= deadline[0]:
                    return
                await one(i, record=True)

        # warm-up: open every connection and fill the service's caches and pools
        if spec.warmup:
            await asyncio.gather(*(warm_worker() for _ in range(spec.connections)))
        delay = spec.start_at - time.time()
        if delay > 0:
            await asyncio.sleep(min(delay, 30))
        cpu0 = time.process_time()
        result.started = time.time()
        deadline[0] = time.perf_counter() + spec.seconds
        await asyncio.gather(*(worker() for _ in range(spec.connections)))
        result.ended = time.time()
        result.cpu_s = time.process_time() - cpu0
    return result


def run_load(spec: LoadSpec) -> LoadResult:
    try:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_drive(spec))
    except ImportError:
        return asyncio.run(_drive(spec))


@dataclass
class Phase:
    label: str
    connections: int
    processes: int
    result: LoadResult
    cpu: dict[str, float] | None = None

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
    start_at = time.time() + 2.0 + (warmup / 200.0)  # child start-up and warm-up
    specs = [
        LoadSpec(
            base_url,
            path,
            keys,
            conns[p],
            reqs[p],
            seconds,
            warm[p],
            start_at,
            index_base,
            processes,
            p,
        )
        for p in range(processes)
    ]
    with ProcessPoolExecutor(max_workers=processes, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_load, s) for s in specs]
        # CPU of the servers and PostgreSQL over the measured window (approximately: from the
        # agreed start to the moment the last client process finishes)
        delay = start_at - time.time()
        if delay > 0:
            time.sleep(delay)
        before = CpuSnapshot.take(servers)
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
    return Phase(label, connections, processes, merged, cpu)


# -- setup ------------------------------------------------------------------------------------


def institution_ids(base_url: str, key: str) -> dict[str, str]:
    out: dict[str, str] = {}
    cursor = None
    headers = {"Authorization": f"Bearer {key}"}
    for _ in range(1000):  # pages of 200: bounded
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        r = httpx.get(f"{base_url}/v1/institutions", params=params, headers=headers, timeout=30)
        r.raise_for_status()
        body = r.json()
        out.update({i["code"]: i["id"] for i in body["items"]})
        cursor = body["next_cursor"]
        if not cursor:
            break
    return out


def give_beds(base_url: str, admin_key: str, ids: dict[str, str], codes: tuple[str, ...]) -> None:
    for code in codes:
        census = {
            "as_of": datetime.now(UTC).isoformat(),
            "beds": [{"specialty_code": "03", "total": 100_000, "occupied": 0}],
        }
        r = httpx.put(
            f"{base_url}/v1/institutions/{ids[code]}/capacity",
            json=census,
            headers={"Authorization": f"Bearer {admin_key}"},
            timeout=30,
        )
        if r.status_code != 200:
            raise RuntimeError(f"capacity for {code}: {r.status_code} {r.text[:400]}")


def log_problems(server: Server) -> list[str]:
    lines = server.log().splitlines()
    return [
        ln[:300]
        for ln in lines
        if "Traceback" in ln
        or '"level": "error"' in ln
        or '"level": "critical"' in ln
        or ln.startswith(("ERROR", "Exception", "CRITICAL"))
    ]


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
        "ON i.id = b.institution_id WHERE b.specialty_code = '03' AND i.code IN "
        "('ZH-CH', 'ZH-TCM') ORDER BY i.code",
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
        f"client processes: {args.client_procs}; PostgreSQL on 127.0.0.1"
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
        print(
            f"  {name:<7} client {c.get('client', 0):.2f}  service {c.get('service', 0):.2f}  "
            f"bare {c.get('bare', 0):.2f}  postgres {c.get('postgres', 0):.2f}  "
            f"machine {c.get('machine_busy_share', 0) * 100:.0f}% busy"
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
        clinic_keys = tuple(
            k["key"] for k in keys if k["role"] == "clinic" and k["consortium_code"] == CONSORTIUM
        )
        ids = institution_ids(service.base_url, admin)
        give_beds(service.base_url, admin, ids, BED_TARGETS)
        print(
            f"service up on {service.base_url} ({args.workers} workers); "
            f"{len(clinic_keys)} Zhenghe clinic keys; "
            f"100,000 beds '03' at {', '.join(BED_TARGETS)}",
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

        common = {"processes": 1, "servers": servers}
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
