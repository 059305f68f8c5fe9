"""The image built and run: a one-shot migration, two replicas behind the nginx gateway.

Builds the repository's Dockerfile with podman (base image made from Debian's packages, wheels
built on the host: see tests/e2e/containers.py), then on the machine's PostgreSQL:

* ``referral-service migrate`` as a one-shot container, ``load-consortium`` likewise;
* two service containers (the image's CMD, non-root, the variables of deploy/compose.yaml) and
  Debian's nginx on the host running deploy/nginx.conf (only the upstream addresses and the
  listen port replaced), the path prefix ``/referral``;
* through the gateway: ``/readyz``, Swagger UI and the OpenAPI document under the prefix, a
  referral created (``Location`` under the prefix) and accepted, ``X-Forwarded-For`` honoured
  in the replica's access log, the image's HEALTHCHECK, the time-zone database;
* SIGTERM (``podman stop``) to one replica while creates are in flight: every create ends with
  exactly one stored referral (clients retry a 502/503 with the same Idempotency-Key, as the
  README tells integrators to), the stopped replica exits 0; restarted, it serves again.

Containers use the host's network (``--network host``), so they reach PostgreSQL on 127.0.0.1
and nginx reaches them on their own ports. Skips, saying why, where podman, runc or nginx is
missing or PostgreSQL is not configured.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e import containers
from tests.e2e.containers import IMAGE, ROOT, Timings, podman
from tests.e2e.server import free_port
from tests.factories import census, referral_body
from tests.support import pg_database_url, pg_execute, pg_url

pytestmark = pytest.mark.slow
PREFIX = "/referral"
DRAIN_SECONDS = 2
CREATES_UNDER_STOP = 60


def _compose_environment() -> dict[str, str]:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text("utf-8"))
    env: dict[str, str] = compose["x-referral-service"]["environment"]
    return {k: str(v) for k, v in env.items()}


def _wait_ready(url: str, deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        with suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.2)  # polling for start-up, not papering over a race
    raise AssertionError(f"{url} not ready within {deadline_s} s")


class Deployment:
    """Two service containers and the gateway; names unique to this run."""

    def __init__(self, tmp: Path, db_url: str) -> None:
        self.tmp = tmp
        self.run_id = uuid.uuid4().hex[:8]
        self.db_url = db_url
        self.ports = {f"api-{i}": free_port() for i in (1, 2)}
        self.gateway_port = free_port()
        self.env_file = tmp / "prod.env"
        # three different random secrets of 32 bytes, as the README says to make them
        self.env_file.write_text(
            "".join(
                f"{name}={secrets.token_hex(32)}\n"
                for name in (
                    "REFERRAL_API_KEY_PEPPER",
                    "REFERRAL_PATIENT_DATA_KEY",
                    "REFERRAL_PATIENT_HMAC_KEY",
                )
            )
        )
        self.nginx: subprocess.Popen[bytes] | None = None

    def name(self, service: str) -> str:
        return f"referral-{self.run_id}-{service}"

    def env_args(self, port: int | None = None) -> list[str]:
        env = _compose_environment()
        env.update(
            REFERRAL_DATABASE_URL=self.db_url,
            REFERRAL_FORWARDED_ALLOW_IPS="127.0.0.1",  # the gateway runs on the host
            REFERRAL_SHUTDOWN_DRAIN_SECONDS=str(DRAIN_SECONDS),
            REFERRAL_RATE_LIMIT_PER_SECOND="0",  # one test key sends every create
        )
        if port is not None:
            env.update(REFERRAL_HOST="127.0.0.1", REFERRAL_PORT=str(port))
        args = ["--env-file", str(self.env_file)]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        return args

    def one_shot(self, *command: str) -> str:
        out = podman("run", "--rm", "--network", "host", *self.env_args(), IMAGE, *command)
        return out.stdout

    def start_service(self, service: str) -> None:
        podman(
            "run",
            "-d",
            "--name",
            self.name(service),
            "--network",
            "host",
            "--stop-timeout",
            "30",
            *self.env_args(self.ports[service]),
            IMAGE,
        )

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def exec(self, service: str, *command: str) -> str:
        return podman("exec", self.name(service), *command).stdout

    def start_gateway(self) -> None:
        conf = (ROOT / "deploy" / "nginx.conf").read_text("utf-8")
        for service, port in self.ports.items():
            conf = conf.replace(f"server {service}:8000", f"server 127.0.0.1:{port}")
        assert "listen 80;" in conf
        conf = conf.replace("listen 80;", f"listen 127.0.0.1:{self.gateway_port};")
        temp = self.tmp / "nginx"
        temp.mkdir()
        paths = "".join(
            f"    {kind}_temp_path {temp / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf = conf.replace("http {\n", "http {\n" + paths, 1)
        conf = f"user root;\npid {temp / 'nginx.pid'};\n" + conf
        (temp / "nginx.conf").write_text(conf)
        log = (self.tmp / "nginx.log").open("wb")
        self.nginx = subprocess.Popen(
            ["nginx", "-p", str(temp), "-c", str(temp / "nginx.conf"), "-g", "daemon off;"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _wait_ready(self.gateway + "/readyz")

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}{PREFIX}"

    def logs(self, service: str) -> str:
        out = podman("logs", self.name(service), check=False)
        return out.stdout + out.stderr

    def close(self) -> None:
        if self.nginx is not None:
            self.nginx.terminate()
            self.nginx.wait(timeout=10)
        for service in self.ports:
            podman("rm", "-f", "-t", "0", self.name(service), check=False)


@contextmanager
def deployment(tmp: Path) -> Iterator[Deployment]:
    base = pg_url() or ""
    name = f"referral_ctr_{uuid.uuid4().hex[:10]}"
    asyncio.run(pg_execute(base, f'CREATE DATABASE "{name}"'))
    dep = Deployment(tmp, pg_database_url(base, name))
    try:
        yield dep
    finally:
        dep.close()
        asyncio.run(pg_execute(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _key(dep: Deployment, role: str, code: str) -> str:
    out = dep.exec("api-2", "referral-service", "create-api-key", "--role", role,
                   "--name", f"container test {code}", "--institution", code)  # fmt: skip
    key: str = json.loads(out)["key"]
    return key


async def _creates_during_stop(
    dep: Deployment, key: str, stop: Any
) -> tuple[Counter[str], list[str], float]:
    """CREATES_UNDER_STOP keyed creates, 12 at a time; `stop` runs once 10 have completed."""
    outcomes: Counter[str] = Counter()
    ids: list[str] = []
    done = asyncio.Event()
    completed = 0
    stop_seconds = 0.0
    semaphore = asyncio.Semaphore(12)

    async def one(client: httpx.AsyncClient, n: int) -> None:
        nonlocal completed
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"stop-{n}"}
        body = referral_body()
        async with semaphore:
            for attempt in range(8):
                try:
                    r = await client.post(dep.gateway + "/v1/referrals", json=body, headers=headers)
                except httpx.TransportError:
                    outcomes["transport_error_retried"] += 1
                    continue
                if r.status_code in (502, 503) or (r.status_code == 409 and attempt):
                    outcomes[f"{r.status_code}_retried"] += 1
                    await asyncio.sleep(0.2 * (attempt + 1))  # a client's backoff
                    continue
                outcomes[str(r.status_code)] += 1
                if r.status_code == 201:
                    ids.append(r.json()["id"])
                break
            completed += 1
            if completed == 10:
                done.set()

    async def stopper() -> None:
        nonlocal stop_seconds
        await done.wait()
        started = time.monotonic()
        await asyncio.to_thread(stop)
        stop_seconds = time.monotonic() - started

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(stopper(), *(one(client, n) for n in range(CREATES_UNDER_STOP)))
    return outcomes, ids, stop_seconds


def test_image_migrate_two_replicas_behind_nginx(tmp_path: Path) -> None:
    missing = containers.missing_tools()
    if missing:
        pytest.skip(
            f"container test: {', '.join(missing)} not installed "
            "(apt-get install podman runc nginx debootstrap)"
        )
    if not pg_url():
        pytest.skip("container test: REFERRAL_TEST_DATABASE_URL is not set (needs PostgreSQL)")
    started = time.monotonic()
    timings = Timings()
    containers.ensure_base_image(timings)
    context = tmp_path / "context"
    context.mkdir()
    size = containers.build_image(context, timings)
    report: dict[str, Any] = {"image": IMAGE, "image_size_mb": round(size / 1e6, 1)}

    with deployment(tmp_path) as dep:
        t = time.monotonic()
        migrated = dep.one_shot("referral-service", "migrate")
        assert "database at revision" in migrated
        data = dep.one_shot(
            "python3", "-c", "import app, pathlib; print(pathlib.Path(app.__file__).parent)"
        ).strip()
        loaded = dep.one_shot("referral-service", "load-consortium",
                              f"{data}/data/consortia/zhenghe.yaml")  # fmt: skip
        assert "consortium ZHENGHE" in loaded
        timings.add("one_shot_migrate_and_load", t)

        t = time.monotonic()
        for service in dep.ports:
            dep.start_service(service)
        for service in dep.ports:
            _wait_ready(dep.url(service) + "/readyz")
        dep.start_gateway()
        timings.add("replicas_and_gateway_ready", t)

        # the image itself: non-root, its HEALTHCHECK, the time-zone database, no compiler
        assert dep.exec("api-1", "id", "-u").strip() == "10001"
        health = podman("healthcheck", "run", dep.name("api-1"), check=False)
        assert health.returncode == 0, health.stdout + health.stderr
        assert dep.exec("api-1", "python3", "-c",
                        "import zoneinfo; print(zoneinfo.ZoneInfo('Asia/Shanghai'))").strip() \
            == "Asia/Shanghai"  # fmt: skip
        assert dep.exec("api-1", "sh", "-c", "command -v gcc cc || echo none").strip() == "none"

        with httpx.Client(base_url=dep.gateway, timeout=30) as gw:
            assert gw.get("/readyz").status_code == 200
            docs = gw.get("/docs")
            assert docs.status_code == 200
            assert f"{PREFIX}/openapi.json" in docs.text
            assert f"{PREFIX}/static/" in docs.text
            assert gw.get("/static/swagger-ui-bundle.js").status_code == 200
            assert gw.get("/openapi.json").json()["servers"] == [{"url": PREFIX}]

            clinic = _key(dep, "clinic", "ZH-THC-TS")
            county = _key(dep, "hospital", "ZH-CH")
            members = gw.get("/v1/institutions", params={"limit": 200}, headers=_auth(county))
            (county_id,) = [i["id"] for i in members.json()["items"] if i["code"] == "ZH-CH"]
            pushed = gw.put(
                f"/v1/institutions/{county_id}/capacity",
                json=census({"03": (120, 20)}),
                headers=_auth(county),
            )
            assert pushed.status_code == 200, pushed.text
            created = gw.post(
                "/v1/referrals",
                json=referral_body(),
                headers={
                    "Authorization": f"Bearer {clinic}",
                    "Idempotency-Key": "container-1",
                    "X-Forwarded-For": "203.0.113.7",
                },
            )
            assert created.status_code == 201, created.text
            referral = created.json()
            assert created.headers["location"] == f"{PREFIX}/v1/referrals/{referral['id']}"
            assert referral["routing"]["target"]["code"] == "ZH-CH", referral["routing"]
            hospital = county
            accepted = gw.post(
                f"/v1/referrals/{referral['id']}/accept",
                json={"ward": "3"},
                headers={
                    "Authorization": f"Bearer {hospital}",
                    "If-Match": created.headers["etag"],
                },
            )
            assert accepted.status_code == 200, accepted.text
            assert accepted.json()["status"] == "accepted"
            # the replica saw the caller's address from the gateway's X-Forwarded-For
            assert any("203.0.113.7" in dep.logs(s) for s in dep.ports)

        # SIGTERM to one replica while creates are in flight
        t = time.monotonic()
        outcomes, ids, stop_seconds = asyncio.run(
            _creates_during_stop(dep, clinic, lambda: podman("stop", "-t", "30", dep.name("api-1")))
        )
        timings.add("creates_during_stop", t)
        exit_code = podman("inspect", dep.name("api-1"), "--format", "{{.State.ExitCode}}")
        assert exit_code.stdout.strip() == "0", dep.logs("api-1")[-2000:]
        assert outcomes["201"] == CREATES_UNDER_STOP, outcomes
        assert len(set(ids)) == CREATES_UNDER_STOP
        stored = asyncio.run(_count_referrals(dep.db_url))
        assert stored == CREATES_UNDER_STOP + 1  # and the accepted one; nothing twice
        stopped_log = dep.logs("api-1")
        assert "readiness fails now" in stopped_log
        # it kept serving during the drain: creates answered after SIGTERM, before it stopped
        after_sigterm = stopped_log.split("readiness fails now", 1)[1]
        drained = sum(
            1
            for line in after_sigterm.splitlines()
            if '"route": "/v1/referrals"' in line and '"status": 201' in line
        )
        assert drained > 0, after_sigterm[-2000:]

        # restarted, the replica serves again
        t = time.monotonic()
        podman("start", dep.name("api-1"))
        _wait_ready(dep.url("api-1") + "/readyz")
        again = httpx.get(
            dep.url("api-1") + f"/v1/referrals/{referral['id']}",
            headers={"Authorization": f"Bearer {clinic}"},
            timeout=10,
        )
        assert again.status_code == 200
        timings.add("restart_ready", t)
        report.update(
            drain_seconds=DRAIN_SECONDS,
            stop_seconds=round(stop_seconds, 1),
            creates_under_stop=CREATES_UNDER_STOP,
            outcomes=dict(outcomes),
            stored=stored,
            created_by_stopped_replica_while_draining=drained,
        )
    report.update(timings=timings.steps, wall_seconds=round(time.monotonic() - started, 1))
    print(json.dumps(report, ensure_ascii=False))


async def _count_referrals(url: str) -> int:
    import asyncpg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    conn = await asyncpg.connect(host=u.host, port=u.port, user=u.username, database=u.database)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM referral"))
    finally:
        await conn.close()
