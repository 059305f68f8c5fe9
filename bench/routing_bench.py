"""Benchmark: how routing cost grows with the size of the consortium.

Part 1, the pure function ``app.domain.routing.route`` (no I/O) with 10, 1,000 and 10,000
candidate institutions: about 10% secondary hospitals offering internal medicine ("03") with a
fresh census and free beds, the rest primary health centres and village clinics (excluded: not
of a higher level than the referring primary centre), plus one upstream partner. Each size is
timed with ``time.perf_counter`` over ``--repeat`` samples (each sample runs the call enough
times to last about 5 ms); the median per call is printed with its ratio to the 10 case.
``decision_to_dict`` (what the API serialises) is timed the same way.

Part 2, a full ``POST /v1/routing/preview`` and ``POST /v1/referrals`` over HTTP against the
real service: for each size a consortium file (format ``referral-consortium/v1``) with that many
members is generated and loaded into a fresh database with ``referral-service migrate`` and
``referral-service load-consortium``; the service is started (``referral-service serve``, one
worker, its per-key rate limit off); the hospitals and the partner get a census through
``PUT /v1/institutions/{id}/capacity`` (admin key from ``referral-service create-api-key``); the
tables are vacuumed and analysed (``VACUUM ANALYZE``, as autovacuum would have done by then in a
database in use); then, with every size's service running, one clinic's previews and then its
creates are timed one request to each size in turn (so that a change of load on the machine
touches the sizes alike), sequentially, one connection per size (median of ``--repeat`` after
a warm-up; each created referral is cancelled, untimed, so that every create finds the same
free beds). Databases are dropped at the end.

    .venv/bin/python bench/routing_bench.py [--sizes 10,1000,10000] [--repeat 20]
        [--backend postgresql|sqlite] [--skip-http] [--skip-pure]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from benchlib import (
    DEFAULT_PG,
    NO_RATE_LIMIT,
    PYTHON,
    Server,
    check_loopback,
    cpu_count,
    create_database,
    drop_database,
    dump_json,
    free_port,
    machine_jiffies,
    pg_execute,
    run_cli,
    start_server,
    up_referral,
)

from app.domain import routing
from app.domain.enums import CareType, InstitutionLevel

HOSPITAL_SHARE = 0.10
CENTRE = (27.366, 118.858)  # Zhenghe county seat
SAMPLE_S = 0.005  # each timing sample lasts at least this long
#: fresh for every run (the service refuses weak secrets; each run has its own databases)
BENCH_SECRETS = {
    "REFERRAL_API_KEY_PEPPER": secrets.token_hex(32),
    "REFERRAL_PATIENT_DATA_KEY": secrets.token_hex(32),
    "REFERRAL_PATIENT_HMAC_KEY": secrets.token_hex(32),
}


# -- a synthetic consortium -------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    code: str
    name: str
    level: InstitutionLevel
    specialties: tuple[str, ...]
    lat: float
    lon: float
    beds_03: int  # 0: none


def members_of(n: int, seed: int = 20240601) -> list[Member]:
    """``n`` members: the first ~10% are secondary hospitals (the first is the lead), then
    primary centres and village clinics (2:1). Deterministic for a given ``n``."""
    rng = random.Random(seed + n)
    hospitals = max(1, round(n * HOSPITAL_SHARE))
    out = []
    for i in range(n):
        lat = CENTRE[0] + rng.uniform(-0.5, 0.5)
        lon = CENTRE[1] + rng.uniform(-0.5, 0.5)
        if i < hospitals:
            out.append(
                Member(
                    f"B{n}-H-{i:05d}",
                    f"基准县医院{i:05d}",
                    InstitutionLevel.SECONDARY,
                    ("02", "03", "03.04", "04", "05"),
                    lat,
                    lon,
                    200,
                )
            )
        elif (i - hospitals) % 3 != 2:
            out.append(
                Member(
                    f"B{n}-P-{i:05d}",
                    f"基准乡镇卫生院{i:05d}",
                    InstitutionLevel.PRIMARY,
                    ("01", "02", "03"),
                    lat,
                    lon,
                    0,
                )
            )
        else:
            out.append(
                Member(
                    f"B{n}-V-{i:05d}",
                    f"基准村卫生室{i:05d}",
                    InstitutionLevel.VILLAGE,
                    ("02",),
                    lat,
                    lon,
                    0,
                )
            )
    return out


def partner_of(n: int) -> Member:
    return Member(
        f"B{n}-PARTNER",
        "基准市第一医院",
        InstitutionLevel.TERTIARY,
        ("03", "03.04", "04"),
        26.64,
        118.17,
        500,
    )


def source_of(members: list[Member]) -> Member:
    return next(m for m in members if m.level is InstitutionLevel.PRIMARY)


def occupied_for(m: Member, rng: random.Random) -> int:
    """Beds occupied in the census: always leaves some free."""
    return rng.randint(0, m.beds_03 - 10)


# -- part 1: the pure function ------------------------------------------------------------------


def candidates(n: int) -> tuple[routing.RoutingRequest, list[routing.Candidate], list[Any]]:
    members = members_of(n)
    partner = partner_of(n)
    source = source_of(members)
    now = datetime.now(UTC)
    rng = random.Random(n)

    def cand(m: Member, member: bool) -> routing.Candidate:
        has_beds = m.beds_03 > 0
        return routing.Candidate(
            institution_id=f"id-{m.code}",
            code=m.code,
            name=m.name,
            level=m.level,
            active=True,
            in_consortium=member,
            specialties=frozenset(c for c in m.specialties if c == "03"),
            centres=frozenset(),
            lat=m.lat,
            lon=m.lon,
            capacity_free=(m.beds_03 - occupied_for(m, rng)) if has_beds else None,
            capacity_total=m.beds_03 if has_beds else None,
            census_as_of=now - timedelta(minutes=rng.randint(1, 300)) if has_beds else None,
        )

    request = routing.RoutingRequest(
        source_institution_id=f"id-{source.code}",
        source_level=source.level,
        source_lat=source.lat,
        source_lon=source.lon,
        consortium_id="bench",
        lead_institution_ids=frozenset({f"id-{members[0].code}"}),
        specialty_code="03",
        care_type=CareType.INPATIENT,
        now=now,
        stale_after=timedelta(hours=12),
        stale_exclude_after=timedelta(hours=72),
    )
    return request, [cand(m, True) for m in members], [cand(partner, False)]


def time_call(fn: Callable[[], object], repeat: int) -> list[float]:
    """Seconds per call, one value per sample; each sample lasts at least SAMPLE_S."""
    loops = 1
    while True:  # calibrate (bounded: at most ~20 doublings)
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        if time.perf_counter() - t0 >= SAMPLE_S or loops >= 1 << 20:
            break
        loops *= 2
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        samples.append((time.perf_counter() - t0) / loops)
    return samples


def pure_bench(sizes: list[int], repeat: int) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        request, members, partners = candidates(n)
        decision = routing.route(request, members, partners)
        assert decision.target is not None and decision.target.code == members[0].code, decision
        route_s = time_call(lambda r=request, m=members, p=partners: routing.route(r, m, p), repeat)
        dict_s = time_call(lambda d=decision: routing.decision_to_dict(d), repeat)
        rows.append(
            {
                "n": n + len(partners),
                "members": n,
                "eligible": 1 + len(decision.alternatives),
                "excluded": len(decision.excluded),
                "route_median_us": statistics.median(route_s) * 1e6,
                "route_min_us": min(route_s) * 1e6,
                "to_dict_median_us": statistics.median(dict_s) * 1e6,
            }
        )
    return rows


def print_pure(rows: list[dict[str, Any]], repeat: int) -> None:
    base = rows[0]
    print()
    print(
        f"Part 1: app.domain.routing.route (pure), median of {repeat} samples; "
        f"ratios vs {base['members']} members"
    )
    head = (
        f"{'members':>8}{'eligible':>10}{'excluded':>10}{'route us':>12}{'ratio':>8}"
        f"{'min us':>10}{'us/cand':>9}{'to_dict us':>12}{'ratio':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['members']:>8}{r['eligible']:>10}{r['excluded']:>10}"
            f"{r['route_median_us']:>12.1f}{r['route_median_us'] / base['route_median_us']:>8.1f}"
            f"{r['route_min_us']:>10.1f}{r['route_median_us'] / r['n']:>9.2f}"
            f"{r['to_dict_median_us']:>12.1f}"
            f"{r['to_dict_median_us'] / base['to_dict_median_us']:>8.1f}"
        )


# -- part 2: the preview over HTTP -------------------------------------------------------------


def file_institution(m: Member) -> dict[str, Any]:
    return {
        "code": m.code,
        "name": m.name,
        "level": m.level.value,
        "type": "general",
        "region_code": "350725",
        "location": {"lat": round(m.lat, 5), "lon": round(m.lon, 5), "approximate": True},
        "specialties": list(m.specialties),
        "centres": [],
        "beds": {"03": m.beds_03} if m.beds_03 else {},
        "outpatient_slots_per_day": {},
        "contact": {"name": "转诊办公室", "phone": "0599-0000000"},
        "active": True,
        "generated_name": True,
    }


def consortium_file(n: int) -> dict[str, Any]:
    members = members_of(n)
    partner = partner_of(n)
    return {
        "format": "referral-consortium/v1",
        "consortium": {
            "code": f"BENCH-{n}",
            "name": f"基准医共体（{n} 家成员）",
            "name_en": f"Benchmark consortium with {n} members",
            "kind": "county_medical_community",
            "close_knit": True,
            "region_code": "350725",
            "referral_prefix": "BN",
            "lead": members[0].code,
            "upstream_partners": [partner.code],
            "notes": "Generated by bench/routing_bench.py.",
        },
        "institutions": [file_institution(m) for m in members],
        "partners": [file_institution(partner)],
    }


async def put_census(base_url: str, admin_key: str, n: int, concurrency: int = 8) -> int:
    """A census for every institution with beds (the hospitals and the partner)."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    rng = random.Random(n)
    with_beds = [m for m in [*members_of(n), partner_of(n)] if m.beds_03]
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
        ids: dict[str, str] = {}
        cursor = None
        for _ in range(10_000):  # bounded paging
            params: dict[str, Any] = {"limit": 200, "level": "secondary"}
            if cursor:
                params["cursor"] = cursor
            r = await client.get("/v1/institutions", params=params)
            r.raise_for_status()
            body = r.json()
            ids.update({i["code"]: i["id"] for i in body["items"]})
            cursor = body["next_cursor"]
            if not cursor:
                break
        r = await client.get("/v1/institutions", params={"limit": 10, "level": "tertiary"})
        ids.update({i["code"]: i["id"] for i in r.json()["items"]})
        todo = iter(with_beds)
        as_of = datetime.now(UTC).isoformat()

        async def worker() -> None:
            for m in todo:
                census = {
                    "as_of": as_of,
                    "beds": [
                        {
                            "specialty_code": "03",
                            "total": m.beds_03,
                            "occupied": occupied_for(m, rng),
                        }
                    ],
                }
                r = await client.put(f"/v1/institutions/{ids[m.code]}/capacity", json=census)
                if r.status_code != 200:
                    raise RuntimeError(f"census for {m.code}: {r.status_code} {r.text[:300]}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(with_beds)


def _timed(samples: list[float], sizes: list[int]) -> dict[str, Any]:
    ordered = sorted(samples)
    return {
        "samples": len(samples),
        "median_ms": statistics.median(samples) * 1000,
        "min_ms": ordered[0] * 1000,
        "max_ms": ordered[-1] * 1000,
        "response_kb": statistics.median(sizes) / 1024,
        "response_max_kb": max(sizes) / 1024,
    }


def _listed(decision: dict[str, Any]) -> dict[str, Any]:
    return {
        "excluded": len(decision["excluded"]),
        "excluded_total": decision.get("excluded_total", len(decision["excluded"])),
        "alternatives": len(decision["alternatives"]),
        "alternatives_total": decision.get("alternatives_total", len(decision["alternatives"])),
    }


PREVIEW_BODY = {"specialty_code": "03", "care_type": "inpatient"}


def referral_body(n: int) -> dict[str, Any]:
    """A valid up-referral from the bench clinic: inpatient internal medicine ("03")."""
    birth = datetime(1950, 1, 1).date() + timedelta(days=n % 20_000)
    return up_referral(n, birth, "基准患者")


@dataclass
class Size:
    """One consortium size: its database, its service, the clinic's connection."""

    members: int
    lead: str
    client: httpx.Client
    facts: dict[str, Any]
    samples: dict[str, list[float]]
    sizes: dict[str, list[int]]
    decisions: dict[str, dict[str, Any]]
    created: int = 0

    def preview(self) -> tuple[float, httpx.Response]:
        t0 = time.perf_counter()
        r = self.client.post("/v1/routing/preview", json=PREVIEW_BODY)
        elapsed = time.perf_counter() - t0
        if r.status_code != 200:
            raise RuntimeError(f"preview: {r.status_code} {r.text[:400]}")
        decision = r.json()
        if (decision.get("target") or {}).get("code") != self.lead:
            raise RuntimeError(f"preview routed to {decision.get('target')}, not the lead")
        self.decisions["preview"] = decision
        return elapsed, r

    def create(self) -> tuple[float, httpx.Response]:
        """A create, then its cancel (untimed) to release its bed."""
        self.created += 1
        key_header = {"Idempotency-Key": uuid.uuid4().hex}
        t0 = time.perf_counter()
        r = self.client.post("/v1/referrals", json=referral_body(self.created), headers=key_header)
        elapsed = time.perf_counter() - t0
        if r.status_code != 201:
            raise RuntimeError(f"create: {r.status_code} {r.text[:400]}")
        body = r.json()
        if (body["routing"].get("target") or {}).get("code") != self.lead:
            raise RuntimeError(f"create routed to {body['routing'].get('target')}")
        cancel = self.client.post(
            f"/v1/referrals/{body['id']}/cancel", headers={"If-Match": r.headers["etag"]}
        )
        if cancel.status_code != 200:
            raise RuntimeError(f"cancel: {cancel.status_code} {cancel.text[:400]}")
        self.decisions["create"] = body["routing"]
        return elapsed, r

    def result(self, what: str) -> dict[str, Any]:
        samples, sizes = self.samples[what], self.sizes[what]
        decision = self.decisions[what]
        ordered = sorted(samples)
        return {
            "samples": len(samples),
            "median_ms": statistics.median(samples) * 1000,
            "min_ms": ordered[0] * 1000,
            "max_ms": ordered[-1] * 1000,
            "response_kb": statistics.median(sizes) / 1024,
            "response_max_kb": max(sizes) / 1024,
            "excluded": len(decision["excluded"]),
            "excluded_total": decision.get("excluded_total", len(decision["excluded"])),
            "alternatives": len(decision["alternatives"]),
            "alternatives_total": decision.get("alternatives_total", len(decision["alternatives"])),
        }


def time_interleaved(sizes: list[Size], what: str, repeat: int, max_seconds: float) -> None:
    """``repeat`` rounds of one request to each size in turn (after 3 warm-up rounds): a change
    of load on the machine touches every size alike."""
    for _ in range(3):
        for size in sizes:
            getattr(size, what)()
    end = time.monotonic() + max_seconds
    for _ in range(repeat):
        if time.monotonic() > end:
            break
        for size in sizes:
            elapsed, r = getattr(size, what)()
            size.samples.setdefault(what, []).append(elapsed)
            size.sizes.setdefault(what, []).append(len(r.content))


def analyze(url: str, sqlite_path: Path) -> None:
    """Table statistics and visibility maps, as autovacuum (PostgreSQL) would have them a minute
    after the load: the plans measured are those of a database in use (index-only scans
    included), not of one loaded a second ago."""
    if url.startswith("postgresql"):
        asyncio.run(pg_execute(url, "VACUUM ANALYZE"))
    else:
        with sqlite3.connect(sqlite_path) as conn:
            conn.execute("ANALYZE")


def prepare_size(
    n: int, args: argparse.Namespace, workdir: Path, servers: list[Server], db_names: list[str]
) -> Size:
    """A database with the consortium of ``n`` members and its census, and its service."""
    if args.backend == "postgresql":
        db_name = f"referral_bench_{uuid.uuid4().hex[:10]}"
        url = asyncio.run(create_database(args.pg_url, db_name))
        db_names.append(db_name)
    else:
        url = f"sqlite+aiosqlite:///{workdir / f'routing-{n}.db'}"
    env = {**BENCH_SECRETS, "REFERRAL_DATABASE_URL": url, "REFERRAL_LOG_LEVEL": "warning"}
    run_cli(["migrate"], env)
    path = workdir / f"consortium-{n}.json"
    path.write_text(json.dumps(consortium_file(n), ensure_ascii=False), encoding="utf-8")
    t0 = time.perf_counter()
    run_cli(["load-consortium", str(path)], env, timeout=1800)
    load_s = time.perf_counter() - t0
    members = members_of(n)
    admin = json.loads(run_cli(["create-api-key", "--role", "admin", "--name", "bench"], env))
    source = source_of(members).code
    clinic = json.loads(
        run_cli(
            [
                "create-api-key",
                "--role",
                "clinic",
                "--name",
                "bench clinic",
                "--institution",
                source,
            ],
            env,
        )
    )
    port = free_port()
    server = start_server(
        f"service-{n}",
        [PYTHON, "-m", "app.cli", "serve"],
        {
            **env,
            "REFERRAL_HOST": "127.0.0.1",
            "REFERRAL_PORT": str(port),
            "REFERRAL_WORKERS": "1",
            **NO_RATE_LIMIT,
        },
        workdir / f"service-{n}.log",
        port=port,
    )
    servers.append(server)
    t0 = time.perf_counter()
    censuses = asyncio.run(put_census(server.base_url, admin["key"], n))
    census_s = time.perf_counter() - t0
    analyze(url, workdir / f"routing-{n}.db")
    client = httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {clinic['key']}"}, timeout=120
    )
    facts = {"load_s": load_s, "census_puts": censuses, "census_s": census_s}
    return Size(n, members[0].code, client, facts, {}, {}, {})


def http_bench(sizes: list[int], args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    servers: list[Server] = []
    db_names: list[str] = []
    prepared: list[Size] = []
    try:
        for n in sizes:
            print(f"\nconsortium of {n} members: database, census, service ...", flush=True)
            prepared.append(prepare_size(n, args, workdir, servers, db_names))
        print("\ntiming previews, then creates, one request to each size in turn ...", flush=True)
        time_interleaved(prepared, "preview", args.repeat, args.max_seconds)
        time_interleaved(prepared, "create", args.repeat, args.max_seconds)
        return [
            {
                "members": size.members,
                **size.facts,
                "preview": size.result("preview"),
                "create": size.result("create"),
            }
            for size in prepared
        ]
    finally:
        for size in prepared:
            size.client.close()
        for server in servers:
            server.stop()
        for db_name in db_names:
            if args.keep_db:
                print(f"kept database {db_name}")
            else:
                asyncio.run(drop_database(args.pg_url, db_name))


def print_http(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    base = rows[0]
    print()
    print(
        f"Part 2: over HTTP ({args.backend}, 1 worker and 1 connection per size, rate limit "
        f"off, sizes interleaved), median of up to {args.repeat}; ratios vs "
        f"{base['members']} members"
    )
    head = (
        f"{'request':>8}{'members':>8}{'median ms':>11}{'ratio':>8}{'min ms':>9}{'max ms':>9}"
        f"{'resp KB':>9}{'listed':>8}{'excluded':>10}{'alts':>6}{'of':>6}"
    )
    print(head)
    print("-" * len(head))
    for what in ("preview", "create"):
        for r in rows:
            m = r[what]
            print(
                f"{what:>8}{r['members']:>8}{m['median_ms']:>11.2f}"
                f"{m['median_ms'] / base[what]['median_ms']:>8.2f}"
                f"{m['min_ms']:>9.2f}{m['max_ms']:>9.2f}{m['response_kb']:>9.1f}"
                f"{m['excluded']:>8}{m['excluded_total']:>10}"
                f"{m['alternatives']:>6}{m['alternatives_total']:>6}"
            )
    print(
        "  resp KB: median body size; listed / excluded: exclusions named in the answer / all "
        "excluded; alts / of: alternatives listed / all eligible after the target"
    )
    print(f"{'members':>8}{'load s':>9}{'census':>8}{'census s':>10}")
    for r in rows:
        print(f"{r['members']:>8}{r['load_s']:>9.1f}{r['census_puts']:>8}{r['census_s']:>10.1f}")
    print(
        "  load s: referral-service load-consortium FILE (wall time, includes interpreter start); "
        "census: PUT capacity calls for the hospitals and the partner, 8 at a time"
    )


def print_busy(before: tuple[int, int, int], after: tuple[int, int, int], what: str) -> None:
    total = max(after[1] - before[1], 1)
    share = (after[0] - before[0]) / total
    steal = (after[2] - before[2]) / total
    print(
        f"  machine busy during {what}: {share:.0%} of {cpu_count()} CPUs, of which steal "
        f"{steal:.0%} (much more than this benchmark needs means something else disturbed it)"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10,1000,10000", help="members per consortium")
    p.add_argument("--repeat", type=int, default=20, help="timed samples per size (20)")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=60,
        help="time limit for the timed rounds of previews, and of creates (60)",
    )
    p.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    p.add_argument("--pg-url", default=DEFAULT_PG)
    p.add_argument("--skip-pure", action="store_true")
    p.add_argument("--skip-http", action="store_true")
    p.add_argument("--keep-db", action="store_true", help="keep databases and logs")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if not sizes or any(not 2 <= s <= 20_000 for s in sizes):
        p.error("--sizes: 2..20000 each")
    if not 1 <= args.repeat <= 1000:
        p.error("--repeat: 1..1000")
    check_loopback(args.pg_url)

    busy0 = machine_jiffies()
    time.sleep(1)
    busy1 = machine_jiffies()
    quiet = (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1)
    print(
        f"machine: {cpu_count()} CPUs usable; Python {sys.version.split()[0]}; "
        f"busy before the run: {quiet:.0%}"
    )
    if quiet > 0.15:
        print("  note: something else is using the CPUs; the figures will be disturbed")
    results: dict[str, Any] = {"sizes": sizes}
    if not args.skip_pure:
        j0 = machine_jiffies()
        results["pure"] = pure_bench(sizes, args.repeat)
        print_pure(results["pure"], args.repeat)
        print_busy(j0, machine_jiffies(), "part 1 (one process, one core)")
    if not args.skip_http:
        workdir = Path(tempfile.mkdtemp(prefix="referral-routing-bench-"))
        ok = False
        try:
            j0 = machine_jiffies()
            rows = http_bench(sizes, args, workdir)
            results["http"] = rows
            print_http(rows, args)
            print_busy(j0, machine_jiffies(), "part 2 (client, service and database)")
            ok = True
        except Exception as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 1
        finally:
            if ok and not args.keep_db:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                print(f"kept: files and logs in {workdir}")
    if args.json:
        dump_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
