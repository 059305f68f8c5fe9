"""Hostile input: oversized bodies, page sizes, unknown fields, rate limit, malformed JSON,
wrong content types and huge strings all answer problem+json 4xx and write nothing.

"Nothing written" is checked by counting the rows of every table a write could touch, through
the app's own database, before and after the hostile requests.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.domain.localtime import local_date
from tests.factories import census, referral_body

PROBLEM_JSON = "application/problem+json"
TABLES = (
    "referral",
    "institution",
    "capacity_change",
    "referral_event",
    "consortium",
    "idempotency_record",
    "webhook_subscription",
    "webhook_event",
    "follow_up",
    "milestone",
    "reimbursement_policy",
    "insurance_filing",
    "insurance_gateway",
)
MIB = 1024 * 1024
HUGE = "患" * 100_000  # 100 000 characters, 300 kB of UTF-8: under the body limit
CLINIC = "demo clinic ZH-THC-TS"
HOSPITAL = "demo hospital ZH-CH"
ADMIN = "demo admin"


async def _counts(app: FastAPI) -> dict[str, int]:
    async with app.state.database.unit_of_work(read_only=True) as session:
        return {
            t: int((await session.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one())
            for t in TABLES
        }


FHIR_JSON = "application/fhir+json"


def _is_fhir(r: httpx.Response) -> bool:
    return r.request.url.path.startswith("/fhir")


def _as_problem(r: httpx.Response) -> dict[str, Any]:
    """The error as a problem document: under /fhir an OperationOutcome carries the same
    type (details.coding), status and field errors (expression = loc, field-error code)."""
    body: dict[str, Any] = r.json()
    if not _is_fhir(r):
        return body
    assert body["resourceType"] == "OperationOutcome" and body["issue"], body
    issues = body["issue"]
    kind = issues[0]["details"]["coding"][0]["code"]
    errors = [
        {
            "loc": [
                int(p) if p.isdigit() else p
                for p in re.split(r"[.\[\]]+", issue["expression"][0])
                if p
            ],
            "type": issue["details"]["coding"][1]["code"],
        }
        for issue in issues
        if issue.get("expression")
    ]
    return {
        "type": "https://referral.example.org/problems/" + kind,
        "status": r.status_code,
        "errors": errors or None,
    }


def _problem(r: httpx.Response, *statuses: int) -> dict[str, Any]:
    """A problem+json 4xx with one of ``statuses`` (any 4xx when none given), not echoing input;
    under /fhir the same as an OperationOutcome (application/fhir+json)."""
    where = f"{r.request.method} {r.request.url.path}"
    if statuses:
        assert r.status_code in statuses, (where, r.status_code, r.text[:500])
    assert 400 <= r.status_code < 500, (where, r.status_code, r.text[:500])
    expected = FHIR_JSON if _is_fhir(r) else PROBLEM_JSON
    assert r.headers["content-type"] == expected, (where, r.headers["content-type"])
    assert "Traceback" not in r.text and len(r.content) < 20_000, (where, len(r.content))
    assert "患患患" not in r.text, where  # huge strings are never echoed
    body = _as_problem(r)
    assert body["status"] == r.status_code and body["type"].startswith("https://"), body
    return body


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # the subscriptions below point at the discard port on loopback: opened explicitly
    return {"webhook_allow": "127.0.0.1:9"}


@pytest.fixture
async def world(client: httpx.AsyncClient, auth: Any) -> dict[str, str]:
    """Real ids for every path parameter: the hostile requests aim at existing objects."""
    admin = auth(ADMIN)
    items = (await client.get("/v1/institutions", params={"limit": 200}, headers=admin)).json()
    ids = {i["code"]: i["id"] for i in items["items"]}
    consortia = (await client.get("/v1/consortia", headers=admin)).json()["items"]
    r = await client.put(
        f"/v1/institutions/{ids['ZH-CH']}/capacity", json=census({"03": (20, 2)}), headers=admin
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        "/v1/referrals",
        json=referral_body(),
        headers={**auth(CLINIC), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    referral = r.json()
    r = await client.post(
        "/v1/webhook-subscriptions",
        json={"url": "http://127.0.0.1:9/his", "event_types": ["referral.created"]},
        headers=auth(HOSPITAL),
    )
    assert r.status_code == 201, r.text
    subscription_id = r.json()["id"]
    r = await client.get(f"/v1/referrals/{referral['id']}/insurance-filings", headers=admin)
    assert r.status_code == 200 and r.json(), r.text
    return {
        "filing_id": r.json()[0]["id"],
        "consortium_id": next(c["id"] for c in consortia if c["code"] == "ZHENGHE"),
        "institution_id": ids["ZH-CH"],
        "referral_id": referral["id"],
        "etag": r.headers.get("etag") or f'"{referral["id"]}.{referral["version"]}"',
        "pathway_code": "stroke",
        "subscription_id": subscription_id,
        "delivery_id": str(uuid.uuid4()),
        "document_id": str(uuid.uuid4()),
        "organization_id": ids["ZH-CH"],
        "service_id": ids["ZH-CH"],
        "location_id": ids["ZH-CH"],
        "definition_id": "bed-capacity",
        "version_id": str(referral["version"]),
        "contract_id": "C-HOSTILE-1",
    }


def _operations(app: FastAPI) -> list[tuple[str, str, bool]]:
    """(method, path template, body required) of every POST/PUT/PATCH taking a body."""
    ops = []
    for path, item in app.openapi()["paths"].items():
        for method, op in item.items():
            if method in ("post", "put", "patch") and "requestBody" in op:
                ops.append((method.upper(), path, bool(op["requestBody"].get("required"))))
    assert len(ops) >= 20, ops
    return ops


def _key_for(method: str, path: str) -> str:
    """The key that may call the operation, so the body is what gets refused."""
    if path in (
        "/v1/referrals",
        "/v1/routing/preview",
        "/v1/remote-requests",
        "/fhir",
        "/fhir/ServiceRequest",
    ) or path.endswith(("/cancel", "/convert")):
        return CLINIC
    if path.startswith("/v1/signings/"):
        return CLINIC
    if path.startswith(("/v1/referrals/", "/v1/webhook-subscriptions", "/fhir/Task/")):
        return HOSPITAL
    return ADMIN


def _url(path: str, world: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: world[m.group(1)], path)


# --- 1 MiB bodies ------------------------------------------------------------------------


async def test_bodies_over_one_mib_are_413(client, auth, app, world) -> None:
    before = await _counts(app)
    padding = "x" * MIB
    cases = [
        ("POST", "/v1/referrals", CLINIC, referral_body(clinical_summary=padding)),
        ("POST", "/v1/institutions", ADMIN, {"code": "X-BIG", "name": padding}),
        ("PUT", f"/v1/institutions/{world['institution_id']}/capacity", ADMIN, census({})),
        ("POST", "/v1/webhook-subscriptions", HOSPITAL, {"url": "http://127.0.0.1:9/" + padding}),
    ]
    for method, url, key, body in cases:
        headers = {**auth(key), "Idempotency-Key": uuid.uuid4().hex}
        if method == "PUT":  # a census padded with whitespace: valid JSON, 1 MiB + 1 byte
            content = b" " * MIB + httpx.Request("PUT", "/", json=body).content
            r = await client.put(
                url, content=content, headers={**headers, "Content-Type": "application/json"}
            )
        else:
            r = await client.request(method, url, json=body, headers=headers)
        _problem(r, 413)
        assert r.json()["type"].endswith("/payload-too-large")

    # no Content-Length (chunked): the limit counts the bytes as they arrive
    _problem(await _chunked_post(client, auth), 413)
    assert await _counts(app) == before


async def _chunked_post(client: httpx.AsyncClient, auth: Any) -> httpx.Response:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"code": "X-BIG", "name": "'
        for _ in range(17):
            yield b"y" * 65_536
        yield b'"}'

    return await client.post(
        "/v1/institutions",
        content=chunks(),
        headers={**auth(ADMIN), "Content-Type": "application/json"},
    )


async def test_chunked_body_over_one_mib_is_413(client, auth, app) -> None:
    before = await _counts(app)
    body = _problem(await _chunked_post(client, auth), 413)
    assert body["type"].endswith("/payload-too-large")
    assert "1048576" in body["detail"] or "1 MiB" in body["detail"], body
    assert await _counts(app) == before


# --- page sizes --------------------------------------------------------------------------


async def test_page_size_beyond_the_limit_is_422(client, auth, app, world) -> None:
    paged = []
    for path, item in app.openapi()["paths"].items():
        params = item.get("get", {}).get("parameters", [])
        limit = next((p for p in params if p["name"] == "limit"), None)
        if limit is None:
            continue
        schema = limit["schema"]
        assert "maximum" in schema, (path, "an unbounded limit")
        required = [p["name"] for p in params if p.get("required") and p["in"] == "query"]
        if schema["maximum"] == 200 and not required:  # a page (not the insurer's listing)
            paged.append(path)
    assert {"/v1/referrals", "/v1/institutions", "/v1/consortia"} <= set(paged), paged
    assert len(paged) >= 6, paged
    for path in paged:
        url = _url(path, world)
        for limit in ("201", "1000000", "0", "-1", "ten", "1e3"):
            r = await client.get(url, params={"limit": limit}, headers=auth(ADMIN))
            body = _problem(r, 422)
            assert any("limit" in e["loc"] for e in body["errors"]), (path, limit, body)
        ok = await client.get(url, params={"limit": "200"}, headers=auth(ADMIN))
        assert ok.status_code == 200, (path, ok.text[:300])


# --- unknown fields ----------------------------------------------------------------------


async def test_unknown_fields_are_refused_no_mass_assignment(client, auth, app, world) -> None:
    before = await _counts(app)
    ch = world["institution_id"]
    institution = {"code": "ZH-NEW", "name": "新卫生院", "level": "primary", "type": "thc"}
    cases: list[tuple[str, str, str, dict[str, Any], str]] = []
    for field, value in (
        ("status", "accepted"),
        ("source_institution_id", ch),
        ("target_institution_id", ch),
        ("tier", "in_consortium_referral_primary_rate"),
        ("number", "ZH-20260101-0001"),
        ("id", str(uuid.uuid4())),
        ("out_of_consortium", True),
    ):
        cases.append(("POST", "/v1/referrals", CLINIC, referral_body(**{field: value}), field))
    patient = {**referral_body()["patient"], "resident_id_hmac": "00"}
    cases.append(("POST", "/v1/referrals", CLINIC, referral_body(patient=patient), "patient"))
    for field, value in (
        ("id", str(uuid.uuid4())),
        ("is_lead", True),
        ("status", "active"),
        ("created_at", "2020-01-01T00:00:00Z"),
    ):
        cases.append(("POST", "/v1/institutions", ADMIN, {**institution, field: value}, field))
    good_census = census({"03": (20, 2)})
    for body, field in (
        ({**good_census, "status": "approved"}, "status"),
        ({**good_census, "institution_id": ch}, "institution_id"),
        (
            {
                **good_census,
                "beds": [{"specialty_code": "03", "total": 9, "occupied": 0, "held": 9}],
            },
            "held",
        ),
    ):
        cases.append(("PUT", f"/v1/institutions/{ch}/capacity", ADMIN, body, field))
    for method, url, key, body, field in cases:
        r = await client.request(
            method, url, json=body, headers={**auth(key), "Idempotency-Key": uuid.uuid4().hex}
        )
        problem = _problem(r, 422)
        assert any(e["type"] == "extra_forbidden" for e in problem["errors"]), (field, problem)
        assert any(field in e["loc"] or field == "patient" for e in problem["errors"]), problem
    assert await _counts(app) == before
    # the capacity was not changed either
    cap = (await client.get(f"/v1/institutions/{ch}/capacity", headers=auth(ADMIN))).json()
    beds = next(i for i in cap["items"] if i["specialty_code"] == "03")
    assert (beds["total"], beds["occupied"]) == (20, 2)


# --- per-key rate limit ------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings_overrides",
    [{"rate_limit_per_second": 0.01, "rate_limit_burst": 3, "webhook_allow": "127.0.0.1:9"}],
)
async def test_rate_limit_per_key_is_429_with_retry_after(client, auth, app) -> None:
    before = await _counts(app)
    h = auth(CLINIC)
    for _ in range(3):
        assert (await client.get("/v1/specialties", headers=h)).status_code == 200
    r = await client.post(
        "/v1/referrals",
        json=referral_body(),
        headers={**h, "Idempotency-Key": uuid.uuid4().hex, "X-Request-ID": "rl-1"},
    )
    problem = _problem(r, 429)
    assert problem["type"].endswith("/rate-limited")
    assert problem["request_id"] == "rl-1" == r.headers["x-request-id"]
    assert int(r.headers["retry-after"]) >= 1  # 1 token per 100 s: about 100
    # the same key in the other header is the same bucket
    other_header = {"X-API-Key": h["Authorization"].removeprefix("Bearer ")}
    _problem(await client.get("/v1/specialties", headers=other_header), 429)
    # other keys and requests without a key are not affected
    assert (await client.get("/v1/specialties", headers=auth(ADMIN))).status_code == 200
    assert (await client.get("/livez")).status_code == 200
    # probes and scrapers are never throttled, even when they carry the exhausted key
    for path in ("/livez", "/readyz", "/metrics"):
        for _ in range(5):
            assert (await client.get(path, headers=h)).status_code == 200, path
    _problem(await client.get("/v1/specialties", headers=h), 429)  # still limited
    metrics = (await client.get("/metrics")).text
    assert 'status="429"' in metrics
    assert await _counts(app) == before


# --- malformed JSON, wrong content types -------------------------------------------------

BAD_BODIES: list[tuple[str, str | None, bytes]] = [
    ("malformed JSON", "application/json", b'{"name": "x", '),
    ("not UTF-8", "application/json", b'{"name": "\xff\xfe"}'),
    ("JSON array", "application/json", b"[]"),
    ("JSON string", "application/json", b'"x"'),
    ("empty", "application/json", b""),
    ("form", "application/x-www-form-urlencoded", b"name=x&code=y&status=accepted"),
    (
        "multipart",
        "multipart/form-data; boundary=b",
        b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--b--\r\n',
    ),
    ("xml", "application/xml", b"<name>x</name>"),
]


async def test_malformed_json_and_wrong_content_types_write_nothing(
    client, auth, app, world
) -> None:
    before = await _counts(app)
    seen: dict[tuple[str, int], int] = {}
    for method, path, required in _operations(app):
        url = _url(path, world)
        headers = {
            **auth(_key_for(method, path)),
            "Idempotency-Key": uuid.uuid4().hex,
            "If-Match": world["etag"],
        }
        valid = referral_body() if path == "/v1/referrals" else None
        cases = list(BAD_BODIES)
        if valid is not None:  # a valid JSON document sent as text/plain is still refused
            cases.append(
                (
                    "valid JSON as text/plain",
                    "text/plain",
                    httpx.Request("POST", "/", json=valid).content,
                )
            )
        else:
            cases.append(("text/plain", "text/plain", b'{"name": "x"}'))
        cases.append(("no content type", None, b"name=x"))
        for label, content_type, content in cases:
            h = dict(headers)
            if content_type is not None:
                h["Content-Type"] = content_type
            if not required and label == "empty":
                continue  # an empty body of an optional-body action is no body: it would run
            r = await client.request(method, url, content=content, headers=h)
            _problem(r)
            seen[(label, r.status_code)] = seen.get((label, r.status_code), 0) + 1
            if required or label in ("malformed JSON", "not UTF-8"):
                assert r.status_code == 422, (method, path, label, r.status_code, r.text[:300])
    after = await _counts(app)
    assert after == before, {t: (before[t], after[t]) for t in TABLES if before[t] != after[t]}
    print(sorted(seen.items()))


# --- huge strings ------------------------------------------------------------------------


async def test_huge_strings_are_refused(client, auth, app, world) -> None:
    before = await _counts(app)
    institution = {"code": "ZH-NEW", "name": HUGE, "level": "primary", "type": "thc"}
    patient = {**referral_body()["patient"], "name": HUGE}
    cases = [
        ("POST", "/v1/institutions", ADMIN, institution),
        ("POST", "/v1/institutions", ADMIN, {**institution, "name": "x", "code": HUGE}),
        ("POST", "/v1/referrals", CLINIC, referral_body(patient=patient)),
        ("POST", "/v1/referrals", CLINIC, referral_body(clinical_summary=HUGE)),
        (
            "POST",
            "/v1/referrals",
            CLINIC,
            referral_body(diagnosis={"icd10": "I63.9", "text": HUGE}),
        ),
        ("POST", "/v1/referrals", CLINIC, referral_body(specialty_code=HUGE)),
        ("POST", "/v1/routing/preview", CLINIC, {"care_type": "inpatient", "pathway": HUGE}),
        (
            "POST",
            "/v1/consortia",
            ADMIN,
            {"code": "NEW", "name": HUGE, "kind": "county", "referral_prefix": "NW"},
        ),
        ("PATCH", f"/v1/institutions/{world['institution_id']}", ADMIN, {"name": HUGE}),
        ("PATCH", f"/v1/consortia/{world['consortium_id']}", ADMIN, {"notes": HUGE}),
        (
            "PUT",
            f"/v1/institutions/{world['institution_id']}/capacity",
            ADMIN,
            {
                **census({"03": (20, 2)}),
                "beds": [{"specialty_code": HUGE, "total": 1, "occupied": 0}],
            },
        ),
        (
            "POST",
            "/v1/webhook-subscriptions",
            HOSPITAL,
            {
                "url": "http://127.0.0.1:9/his",
                "event_types": ["referral.created"],
                "description": HUGE,
            },
        ),
        (
            "POST",
            f"/v1/referrals/{world['referral_id']}/reject",
            HOSPITAL,
            {"reason_code": "other", "reason_text": HUGE},
        ),
    ]
    for method, url, key, body in cases:
        headers = {**auth(key), "Idempotency-Key": uuid.uuid4().hex, "If-Match": world["etag"]}
        r = await client.request(method, url, json=body, headers=headers)
        assert len(r.request.content) > 100_000
        problem = _problem(r, 422)
        kinds = {e["type"] for e in problem["errors"]}
        assert kinds & {"string_too_long", "string_pattern_mismatch"}, (url, problem)
    # a huge header value or query string is refused too
    r = await client.get("/v1/institutions", params={"q": HUGE[:5000]}, headers=auth(ADMIN))
    _problem(r, 422)
    r = await client.post(
        "/v1/referrals",
        json=referral_body(),
        headers={**auth(CLINIC), "Idempotency-Key": "k" * 5000},
    )
    _problem(r, 422)
    assert await _counts(app) == before


# --- item 8: no input gives 500: a hostile-case sweep over every operation ---------------

NUL = "ab\x00cd"
HOSTILE_PATH = ("ab%00cd", "1" * 23, "-1", "%25", "' OR '1'='1", "9" * 300, "%C0%AF")
HOSTILE_QUERY = (NUL, "1" * 23, "-" + "9" * 30, "1e309", "NaN", "true", "[]", "%", "\\", "_")
HOSTILE_VALUES: tuple[Any, ...] = (NUL, 10**23, -(10**23), 1e308, True, [], {}, None, [NUL])


#: the other query parameters an operation needs, so that the hostile one is what gets refused
VALID_QUERIES: dict[str, dict[str, str]] = {
    "/v1/reports/referrals": {"from": "2025-01-01", "to": "2025-02-01"},
    "/v1/reports/leaks": {"from": "2025-01-01", "to": "2025-02-01"},
    "/v1/reports/green-channel": {"from": "2025-01-01", "to": "2025-02-01"},
    "/v1/reports/appraisal": {"year": "2025", "consortium": "ZHENGHE"},
}


def _deep_json(depth: int = 5000) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _properties(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Top-level properties of a body schema (every member of a union)."""
    schema = _resolve(doc, schema)
    props = dict(schema.get("properties", {}))
    for member in schema.get("oneOf", []) + schema.get("anyOf", []):
        props.update(_properties(doc, member))
    return props


def _is_string(doc: dict[str, Any], schema: dict[str, Any]) -> bool:
    schema = _resolve(doc, schema)
    if schema.get("type") == "string":
        return True
    return any(_is_string(doc, s) for s in schema.get("anyOf", []) if s.get("type") != "null")


def _problem_or_ok(r: httpx.Response, label: Any) -> None:
    where = (r.request.method, r.request.url.path, label)
    assert r.status_code < 500, (where, r.status_code, r.text[:300])
    if r.status_code >= 400:
        expected = FHIR_JSON if _is_fhir(r) else PROBLEM_JSON
        assert r.headers["content-type"] == expected, (where, r.headers["content-type"])
        assert "\x00" not in r.text and "\\u0000" not in r.text, where


def _valid_bodies(world: dict[str, str]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        ("POST", "/v1/referrals"): referral_body(),
        ("POST", "/v1/institutions"): {
            "code": "ZH-SWEEP",
            "name": "卫生院",
            "level": "primary",
            "type": "general",
            "consortium_id": world["consortium_id"],
        },
        ("PUT", "/v1/institutions/{institution_id}/capacity"): census({"03": (20, 2)}),
        ("POST", "/v1/webhook-subscriptions"): {
            "url": "http://127.0.0.1:9/his",
            "event_types": ["referral.created"],
        },
        ("POST", "/v1/routing/preview"): {"care_type": "inpatient", "specialty_code": "03"},
        ("POST", "/v1/referrals/{referral_id}/reject"): {"reason_code": "other"},
        ("PUT", "/v1/consortia/{consortium_id}/insurance-gateway"): {
            "url": "http://127.0.0.1:9/fsi",
            "token": "t",
        },
    }


async def test_item8_hostile_sweep_over_every_operation_never_gives_500(
    client, auth, app, world
) -> None:
    doc = app.openapi()
    world = {**world, "episode_id": world["referral_id"]}
    valid = _valid_bodies(world)
    sent = 0
    operations = [
        (m.upper(), p, op)
        for p, item in doc["paths"].items()
        for m, op in item.items()
        if m in ("get", "post", "put", "patch", "delete")
    ]
    assert len(operations) >= 50, len(operations)
    swept = {p for _, p, _ in operations}
    assert {"/v1/reports/leaks", "/v1/reports/appraisal", "/v1/me", "/v1/routing/preview"} <= swept
    for method, path, op in operations:
        key = _key_for(method, path)
        headers = {**auth(key), "If-Match": world["etag"]}
        params = [p for p in op.get("parameters", []) if p["in"] in ("path", "query")]
        body = valid.get((method, path), {}) if "requestBody" in op else None
        for param in params:
            name = param["name"]
            values = HOSTILE_PATH if param["in"] == "path" else HOSTILE_QUERY
            for value in values:
                valid_query = VALID_QUERIES.get(path, {})
                if param["in"] == "path":
                    url, query = path.replace("{" + name + "}", value), dict(valid_query)
                else:
                    url, query = path, {**valid_query, name: value}
                r = await client.request(
                    method,
                    _url(url, world),
                    params=query,
                    json=body,
                    headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                )
                sent += 1
                _problem_or_ok(r, (name, value[:30]))
                if "\x00" in value or "%00" in value:
                    problem = _problem(r, 422)
                    assert problem["errors"][0]["type"] == "string_nul", problem
                    if param["in"] == "query":
                        assert problem["errors"][0]["loc"] == ["query", name], problem
        if "requestBody" not in op:
            continue
        url = _url(path, world)
        r = await client.request(
            method,
            url,
            content=_deep_json(),
            headers={**headers, "Content-Type": "application/json"},
        )
        sent += 1
        if "application/json" not in op["requestBody"]["content"]:
            # a raw upload (a document): JSON is no document of any accepted type
            assert r.status_code in (415, 422), (path, r.status_code)
            assert _problem(r, r.status_code)["errors"], (path, r.text[:300])
            continue
        assert _problem(r, 422)["errors"][0]["loc"] == ["body"], (path, r.text[:300])
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        for field, field_schema in _properties(doc, schema).items():
            for value in HOSTILE_VALUES:
                r = await client.request(
                    method,
                    url,
                    json={**(body or {}), field: value},
                    headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                )
                sent += 1
                _problem_or_ok(r, (field, repr(value)[:30]))
                if value == NUL and _is_string(doc, field_schema):
                    problem = _problem(r, 422)
                    assert any(  # a field of the other union member is refused as extra
                        e["type"] in ("string_nul", "extra_forbidden") and field in e["loc"]
                        for e in problem["errors"]
                    ), (path, field, problem)
    print(f"hostile sweep: {len(operations)} operations, {sent} requests, no 5xx")


@pytest.mark.parametrize(
    ("path", "params", "loc"),
    [
        ("/v1/reports/leaks", {"from": "2025-01-01", "to": "2024-01-01"}, ["query", "to"]),
        ("/v1/reports/leaks", {"from": "2025-02-30", "to": "2026-01-01"}, ["query", "from"]),
        ("/v1/reports/leaks", {"from": "2025-01-01", "to": "x" * 300}, ["query", "to"]),
        (
            "/v1/reports/leaks",
            {"from": "2025-01-01", "to": "2026-01-01", "consortium": "c" * 40},
            ["query", "consortium"],
        ),
        ("/v1/reports/appraisal", {"year": "1e309", "consortium": "ZHENGHE"}, ["query", "year"]),
        ("/v1/reports/appraisal", {"year": "-2025", "consortium": "ZHENGHE"}, ["query", "year"]),
        ("/v1/reports/appraisal", {"year": "2025"}, ["query", "consortium"]),
        ("/v1/reports/appraisal", {"year": "2025", "consortium": "Z\x00"}, ["query", "consortium"]),
    ],
)
async def test_new_figures_refuse_bad_queries_naming_the_field(
    client: httpx.AsyncClient,
    auth: Any,
    app: FastAPI,
    path: str,
    params: dict[str, str],
    loc: list[str],
) -> None:
    """Leaks and the scorecard: a bad parameter is a 422 problem naming it, never echoing it,
    never a 500, nothing written."""
    before = await _counts(app)
    r = await client.get(path, params=params, headers=auth(ADMIN))
    problem = _problem(r, 422)
    assert any(e["loc"] == loc for e in problem["errors"]), problem
    for value in params.values():
        if len(value) > 6:
            assert value not in r.text
    assert await _counts(app) == before


async def test_preview_cost_fields_refuse_hostile_values(
    client: httpx.AsyncClient, auth: Any, app: FastAPI
) -> None:
    before = await _counts(app)
    body = {"specialty_code": "03", "care_type": "inpatient"}
    for field, value in (
        ("insurance_scheme", "DROP TABLE"),
        ("insurance_scheme", 390),
        ("reason", "x" * 5000),
        ("deductible_paid_in_episode", "yes please"),
    ):
        r = await client.post(
            "/v1/routing/preview", json={**body, field: value}, headers=auth(CLINIC)
        )
        problem = _problem(r, 422)
        assert any(field in e["loc"] for e in problem["errors"]), (field, problem)
        assert "DROP TABLE" not in r.text and "xxxxxxxx" not in r.text
    assert await _counts(app) == before


async def test_item8_nul_in_nested_body_strings_and_headers_is_422(client, auth, app) -> None:
    before = await _counts(app)
    patient = {**referral_body()["patient"], "name": "张\x00三"}
    cases = [
        referral_body(patient=patient),
        referral_body(diagnosis={"icd10": "I63.9", "text": "卒中\x00"}),
        referral_body(clinical_summary="ok\x00"),
    ]
    for body in cases:
        r = await client.post(
            "/v1/referrals",
            json=body,
            headers={**auth(CLINIC), "Idempotency-Key": uuid.uuid4().hex},
        )
        problem = _problem(r, 422)
        assert any(e["type"] == "string_nul" for e in problem["errors"]), problem
        assert "张" not in r.text and "卒中" not in r.text
    r = await client.get("/v1/specialties", headers={**auth(CLINIC), "X-User-ID": "u\x00"})
    problem = _problem(r, 422)
    assert problem["errors"][0]["loc"] == ["header", "x-user-id"], problem
    assert await _counts(app) == before


@pytest.mark.parametrize(
    "path", ["/v1/referrals", "/v1/institutions", "/v1/consortia", "/v1/webhook-subscriptions"]
)
async def test_item8_malformed_cursors_are_422_naming_cursor(client, auth, path) -> None:
    import base64

    def b64(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    cursors = [
        "1" * 23,
        b64("1" * 23 + "|2026-01-01T00:00:00+00:00|0190a0a0-0000-7000-8000-000000000000"),
        b64("3|2026-01-01T00:00:00|0190a0a0-0000-7000-8000-000000000000"),
        b64("3|0001-01-01T00:00:00+14:00|0190a0a0-0000-7000-8000-000000000000"),
        b64("3|2026-01-01T00:00:00+00:00|x\x00y"),
        b64("' OR 1=1 --"),
        b64("a\x00b"),
        "!!!!",
        "%",
    ]
    key = HOSPITAL if path == "/v1/webhook-subscriptions" else ADMIN
    for cursor in cursors:
        r = await client.get(path, params={"cursor": cursor}, headers=auth(key))
        problem = _problem(r, 422)
        assert any(e["loc"] == ["query", "cursor"] for e in problem["errors"]), (cursor, problem)


# --- item 10: census input -----------------------------------------------------------------


async def test_item10_census_occupied_above_total_and_loose_numbers_are_422(
    client, auth, app, world
) -> None:
    ch = world["institution_id"]
    url = f"/v1/institutions/{ch}/capacity"
    before = await _counts(app)
    today = local_date(datetime.now(UTC), "Asia/Shanghai")  # census and report days are local
    bad: list[tuple[dict[str, Any], list[str | int]]] = []
    for total, occupied, field in (
        (3, 5, "occupied"),
        (True, 0, "total"),
        ("12", 0, "total"),
        (12.0, 0, "total"),
        (12, "3", "occupied"),
        (12, False, "occupied"),
    ):
        beds = [{"specialty_code": "03", "total": total, "occupied": occupied}]
        bad.append(({**census({}), "beds": beds}, ["body", "beds", 0, field]))
    for day in ("0001-01-01", "9999-12-31", (today + timedelta(days=91)).isoformat()):
        slots = [{"specialty_code": "03", "day": day, "total": 5, "occupied": 0}]
        bad.append(({**census({}), "slots": slots}, ["body", "slots", 0, "day"]))
    slot = {"specialty_code": "03", "day": today.isoformat(), "total": 5, "occupied": 6}
    bad.append(({**census({}), "slots": [slot]}, ["body", "slots", 0, "occupied"]))
    twice = [{"specialty_code": "03", "total": 5, "occupied": 1}] * 2
    bad.append(({**census({}), "beds": twice}, ["body", "beds", 1, "specialty_code"]))
    many = [{"specialty_code": "03", "day": today.isoformat(), "total": 1, "occupied": 0}] * 2001
    bad.append(({**census({}), "slots": many}, ["body", "slots"]))
    for body, loc in bad:
        r = await client.put(url, json=body, headers=auth(ADMIN))
        problem = _problem(r, 422)
        assert any(e["loc"] == loc for e in problem["errors"]), (loc, problem["errors"][:3])
    assert await _counts(app) == before
    cap = (await client.get(url, headers=auth(ADMIN))).json()
    beds = next(i for i in cap["items"] if i["specialty_code"] == "03")
    assert (beds["total"], beds["occupied"]) == (20, 2)


async def test_item10_census_is_written_in_bulk(client, auth, app, world) -> None:
    """2,000 slot rows and 22 bed rows: a few statements, not one or two per row."""
    from sqlalchemy import event

    ch = world["institution_id"]
    today = local_date(datetime.now(UTC), "Asia/Shanghai")  # census and report days are local
    codes = ["01", "02", "03", "04", "05", "06", "07"]
    codes += [f"03.{n:02d}" for n in range(1, 12)] + [f"04.{n:02d}" for n in range(1, 5)]
    slots = [
        {
            "specialty_code": code,
            "day": (today + timedelta(days=d)).isoformat(),
            "total": 10,
            "occupied": d % 10,
        }
        for code in codes
        for d in range(-1, 91)
    ][:2000]
    beds = [{"specialty_code": c, "total": 30, "occupied": 3} for c in codes]
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = app.state.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        r = await client.put(
            f"/v1/institutions/{ch}/capacity",
            json={**census({}), "beds": beds, "slots": slots},
            headers=auth(ADMIN),
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert r.status_code == 200, r.text[:300]
    assert len(r.json()["items"]) == 2000 + len(codes)
    writes = [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
    assert len(writes) <= 12 and len(statements) <= 25, (len(writes), len(statements))
    async with app.state.database.unit_of_work(read_only=True) as session:
        stored = (
            await session.execute(
                text("SELECT count(*) FROM slot_capacity WHERE institution_id = :i"), {"i": ch}
            )
        ).scalar_one()
        history = (
            await session.execute(
                text("SELECT count(*) FROM capacity_change WHERE institution_id = :i"), {"i": ch}
            )
        ).scalar_one()
    assert stored == 2000 and history >= 2000 + len(codes)
    print(f"census of 2,022 rows: {len(statements)} statements, {len(writes)} writes")


# --- item 13: error bodies name the field, never the value -----------------------------------


async def test_item13_error_bodies_never_echo_submitted_values(client, auth, app, world) -> None:
    unknown_id = "0190ffff-dead-7eef-8000-00000000beef"
    marker = "Zq9Marker"
    patient = {**referral_body()["patient"], "resident_id": "350725199001011230"}
    cases: list[tuple[str, str, str, Any, str]] = [
        ("POST", "/v1/referrals", CLINIC, referral_body(patient=patient), "350725199001011230"),
        ("POST", "/v1/referrals", CLINIC, referral_body(specialty_code="99.97"), "99.97"),
        (
            "POST",
            "/v1/referrals",
            CLINIC,
            referral_body(patient_choice_institution_id=unknown_id),
            unknown_id,
        ),
        ("POST", "/v1/referrals", CLINIC, referral_body(episode_id=unknown_id), unknown_id),
        (
            "POST",
            "/v1/referrals",
            CLINIC,
            {**referral_body(), "direction": marker},
            marker,
        ),
        ("POST", "/v1/referrals", CLINIC, referral_body(urgency=marker), marker),
        (
            "POST",
            "/v1/referrals",
            CLINIC,
            referral_body(diagnosis={"icd10": "ZZ" + marker, "text": "x"}),
            marker,
        ),
        (
            "POST",
            "/v1/institutions",
            ADMIN,
            {
                "code": "ZH-E13",
                "name": "x",
                "level": "primary",
                "type": "general",
                "specialties": ["88.87"],
            },
            "88.87",
        ),
        (
            "PATCH",
            f"/v1/consortia/{world['consortium_id']}",
            ADMIN,
            {"upstream_partner_ids": [unknown_id]},
            unknown_id,
        ),
        (
            "PUT",
            f"/v1/institutions/{world['institution_id']}/capacity",
            ADMIN,
            {**census({}), "beds": [{"specialty_code": "88.86", "total": 1, "occupied": 0}]},
            "88.86",
        ),
        (
            "POST",
            "/v1/reimbursement-policies",
            ADMIN,
            {"policy": {"code": "=" + marker, "version": 1}},
            marker,
        ),
        (
            "POST",
            "/v1/webhook-subscriptions",
            HOSPITAL,
            {"url": "http://127.0.0.1:9/his", "event_types": [marker]},
            marker,
        ),
        ("POST", "/v1/routing/preview", CLINIC, {"care_type": marker}, marker),
        ("GET", f"/v1/institutions?consortium={unknown_id}&level={marker}", ADMIN, None, marker),
        ("GET", f"/v1/referrals?created_from={marker}", ADMIN, None, marker),
        ("GET", f"/v1/institutions/{world['institution_id']}/capacity?x=1", ADMIN, None, "x=1"),
    ]
    for method, url, key, body, value in cases:
        headers = {**auth(key), "Idempotency-Key": uuid.uuid4().hex, "If-Match": world["etag"]}
        r = await client.request(method, url, json=body, headers=headers)
        if r.status_code < 400:
            continue  # accepted (an ignored query parameter): nothing to echo
        problem = _problem(r)
        assert value not in r.text, (method, url, r.text[:400])
        if problem.get("errors"):
            assert all(e["loc"] for e in problem["errors"]), problem


# --- item 17: LIKE wildcards in q are characters ----------------------------------------------


async def test_item17_search_wildcards_match_literally(client, auth, app) -> None:
    h = auth(ADMIN)
    every = (await client.get("/v1/institutions", params={"limit": 200}, headers=h)).json()
    assert len(every["items"]) > 10
    for q in ("%", "_", "%%", "\\", "_%", "%\\"):
        r = await client.get("/v1/institutions", params={"q": q, "limit": 200}, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["items"] == [], (q, len(r.json()["items"]))
    found = (await client.get("/v1/institutions", params={"q": "医院"}, headers=h)).json()
    assert found["items"] and all("医院" in i["name"] for i in found["items"])
    # a name holding the wildcard characters is found by them, and only it
    r = await client.post(
        "/v1/institutions",
        json={"code": "ZH-PCT", "name": "卫生院 100%_a\\b", "level": "primary", "type": "general"},
        headers=h,
    )
    assert r.status_code == 201, r.text
    for q in ("%", "_", "0%_", "\\"):
        items = (await client.get("/v1/institutions", params={"q": q}, headers=h)).json()["items"]
        assert [i["code"] for i in items] == ["ZH-PCT"], (q, items)


# --- item 7: CSV exports cannot carry formulas --------------------------------------------------


async def test_item7_csv_cells_starting_like_formulas_are_neutralised(
    client, auth, app, world
) -> None:
    import csv
    import io

    h = auth(ADMIN)
    formula = '=HYPERLINK("http://evil.example/","x")'
    r = await client.patch(
        f"/v1/institutions/{world['institution_id']}", json={"name": formula}, headers=h
    )
    assert r.status_code == 200, r.text
    today = local_date(datetime.now(UTC), "Asia/Shanghai")  # census and report days are local
    r = await client.get(
        "/v1/reports/referrals",
        params={"from": today.replace(day=1).isoformat(), "to": (today + timedelta(days=1))},
        headers={**auth("demo council ZHENGHE"), "Accept": "text/csv"},
    )
    assert r.status_code == 200, r.text[:300]
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    names = [row["name"] for row in rows]
    assert "'" + formula in names, names
    for row in rows:
        for cell in row.values():
            assert not (cell or "x").startswith(("=", "+", "-", "@", "\t", "\r")), row
    # policy codes are codes: a formula is refused at input
    r = await client.post(
        "/v1/reimbursement-policies",
        json={"policy": {"code": "=1+1", "version": 1}},
        headers=h,
    )
    _problem(r, 422)


def test_item7_safe_cell_prefixes_formula_starts() -> None:
    from app.api.csv_export import safe_cell, to_csv

    for text_ in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert safe_cell(text_) == "'" + text_
    assert safe_cell(-1) == -1 and safe_cell(None) == "" and safe_cell("政和") == "政和"
    body = to_csv(["a", "b"], [{"a": "=cmd|' /C calc'!A0", "b": 3}]).decode("utf-8-sig")
    assert body.splitlines()[1] == "'=cmd|' /C calc'!A0,3"
