"""ApiDriver: the API steps the integration tests repeat; the ``api`` fixture (conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import httpx

from tests.factories import census, down_body, referral_body

#: the caller of a step: a demo key name, or headers already made with ``auth(...)``
Who = str | Mapping[str, str]
#: a referral: its JSON body, or the response that carries it
Ref = Mapping[str, Any] | httpx.Response


class ApiDriver:
    """Drives the service through its HTTP API as the demo users do, one request per step.

    ``who`` names the caller: a demo key name (``"demo clinic ZH-THC-TS"``,
    ``"demo hospital ZH-CH"``, ``"demo admin"``) or headers made with ``auth(...)`` (add
    ``X-User-ID`` to them to have a user in the audit trail). Every step asserts the status is
    ``expect`` (``expect=None``: the test checks the status itself) and returns the
    ``httpx.Response``; take ``.json()`` for the referral::

        ids = await api.ids()                              # institution code -> id
        ref = (await api.create("demo clinic ZH-THC-TS", urgency="emergency")).json()
        ref = (await api.act("demo hospital ZH-CH", ref, "accept")).json()
        await api.set_beds("ZH-CH", {"03": (40, 1)})       # specialty -> (total, occupied)

    ``create(who, **fields)``
        POST /v1/referrals with ``referral_body(**fields)`` (or ``body=``) and a fresh
        Idempotency-Key (or ``key=``); expects 201.
    ``create_down(who, up, patient, **fields)``
        the same with ``down_body(up, patient, **fields)``: a down-referral after ``up``.
    ``post(who, path, body)``
        any POST with a fresh Idempotency-Key (``/v1/referrals/{id}/escalate``); expects 201.
    ``act(who, ref, action, body)``
        POST /v1/referrals/{id}/{action} with ``If-Match`` the ETag of ``ref`` as passed (a stale
        ``ref`` sends a stale ETag; ``etag=`` sends another, ``etag=""`` none); expects 200.
    ``get(who, ref)``
        GET /v1/referrals/{id}; expects 200.
    ``set_beds(code, beds)`` / ``set_slots(code, day, slots)``
        a census of beds, or of one day's outpatient slots, pushed by the admin to the
        institution with that code (dated now, or ``as_of=``); expects 200.
    """

    def __init__(self, client: httpx.AsyncClient, auth: Callable[[str], dict[str, str]]) -> None:
        self.client = client
        self.auth = auth
        self._ids: dict[str, str] = {}

    def headers(self, who: Who) -> dict[str, str]:
        return self.auth(who) if isinstance(who, str) else dict(who)

    async def ids(self) -> dict[str, str]:
        """Institution code -> id for every institution, as the admin lists them."""
        found: dict[str, str] = {}
        params: dict[str, Any] = {"limit": 200}
        while True:
            r = await self.client.get(
                "/v1/institutions", params=params, headers=self.auth("demo admin")
            )
            assert r.status_code == 200, r.text
            page = r.json()
            found.update({i["code"]: i["id"] for i in page["items"]})
            if not page["next_cursor"]:
                self._ids = found
                return dict(found)
            params["cursor"] = page["next_cursor"]

    async def post(
        self, who: Who, path: str, body: Any, *, key: str | None = None, expect: int | None = 201
    ) -> httpx.Response:
        headers = {**self.headers(who), "Idempotency-Key": key or uuid.uuid4().hex}
        return _checked(await self.client.post(path, json=body, headers=headers), expect)

    async def create(
        self,
        who: Who,
        body: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        expect: int | None = 201,
        **fields: Any,
    ) -> httpx.Response:
        assert body is None or not fields, "give a body or fields for referral_body, not both"
        payload = referral_body(**fields) if body is None else body
        return await self.post(who, "/v1/referrals", payload, key=key, expect=expect)

    async def create_down(
        self,
        who: Who,
        up: Mapping[str, Any],
        patient: Mapping[str, Any],
        *,
        expect: int | None = 201,
        **fields: Any,
    ) -> httpx.Response:
        return await self.create(who, down_body(up, patient, **fields), expect=expect)

    async def act(
        self,
        who: Who,
        ref: Ref,
        action: str,
        body: Any = None,
        *,
        etag: str | None = None,
        expect: int | None = 200,
    ) -> httpx.Response:
        data = ref.json() if isinstance(ref, httpx.Response) else ref
        headers = self.headers(who)
        tag = f'"{data["id"]}.{data["version"]}"' if etag is None else etag
        if tag:
            headers["If-Match"] = tag
        r = await self.client.post(
            f"/v1/referrals/{data['id']}/{action}", json=body, headers=headers
        )
        return _checked(r, expect)

    async def get(self, who: Who, ref: Ref, *, expect: int | None = 200) -> httpx.Response:
        data = ref.json() if isinstance(ref, httpx.Response) else ref
        r = await self.client.get(f"/v1/referrals/{data['id']}", headers=self.headers(who))
        return _checked(r, expect)

    async def set_beds(
        self,
        code: str,
        beds: dict[str, tuple[int, int]],
        *,
        as_of: datetime | None = None,
        expect: int | None = 200,
    ) -> httpx.Response:
        return await self._census(code, census(beds, as_of=as_of), expect)

    async def set_slots(
        self,
        code: str,
        day: str,
        slots: dict[str, tuple[int, int]],
        *,
        as_of: datetime | None = None,
        expect: int | None = 200,
    ) -> httpx.Response:
        rows = [
            {"specialty_code": c, "day": day, "total": t, "occupied": o}
            for c, (t, o) in slots.items()
        ]
        return await self._census(code, {**census({}, as_of=as_of), "slots": rows}, expect)

    async def _census(self, code: str, body: dict[str, Any], expect: int | None) -> httpx.Response:
        if code not in self._ids:
            await self.ids()
        r = await self.client.put(
            f"/v1/institutions/{self._ids[code]}/capacity",
            json=body,
            headers=self.auth("demo admin"),
        )
        return _checked(r, expect)


def _checked(r: httpx.Response, expect: int | None) -> httpx.Response:
    if expect is not None:
        assert r.status_code == expect, r.text
    return r
