"""Documents on a referral (issue: the record that travels with the patient, #1).

The source attaches a PDF and a CDA document; the target lists and downloads them, byte for
byte; an unrelated institution gets 404. The type is taken from the content (a PNG called a PDF
is refused, so is XML with a DTD or entities, XML that is not CDA, and XML in another encoding);
20 MiB is the cap (over 1 MiB is fine here, over 20 MiB is 413); content and file name are
sealed at rest; the uploader withdraws its document."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sqlalchemy import text

CLINIC = "demo clinic ZH-THC-TS"
HOSPITAL = "demo hospital ZH-CH"
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\n% referral letter: patient-visible text 123\n%%EOF\n"
CDA = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<ClinicalDocument xmlns="urn:hl7-org:v3"><title>双向转诊（转出）记录</title>'
    "<component><section><text>诊断：冠心病（测试）</text></section></component>"
    "</ClinicalDocument>"
).encode()
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
FILE_NAME = "测试患者甲-转诊单.pdf"
GB18030_CDA = '<?xml version="1.0" encoding="GB18030"?><ClinicalDocument/>'.encode("gb18030")


async def _referral(api: Any) -> dict[str, Any]:
    await api.set_beds("ZH-CH", {"03": (40, 1)})
    return dict((await api.create(CLINIC)).json())


async def _attach(
    client: Any,
    auth: Any,
    ref: dict[str, Any],
    content: bytes,
    media: str,
    *,
    who: str = CLINIC,
    kind: str = "referral_record",
    name: str | None = None,
) -> Any:
    headers = {**auth(who), "Content-Type": media}
    if name:
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name)}"
    return await client.post(
        f"/v1/referrals/{ref['id']}/documents",
        params={"document_type": kind},
        content=content,
        headers=headers,
    )


async def test_attached_read_by_the_target_refused_to_others(api, client, auth, app) -> None:
    ref = await _referral(api)
    pdf = await _attach(client, auth, ref, PDF, "application/pdf", name=FILE_NAME)
    assert pdf.status_code == 201, pdf.text
    assert pdf.json()["media_type"] == "application/pdf" and pdf.json()["size"] == len(PDF)
    assert pdf.json()["file_name"] == FILE_NAME
    cda = await _attach(
        client, auth, ref, CDA, "application/hl7-cda+xml", who=HOSPITAL, kind="discharge_summary"
    )
    assert cda.status_code == 201, cda.text
    listed = await client.get(f"/v1/referrals/{ref['id']}/documents", headers=auth(HOSPITAL))
    assert [d["document_type"] for d in listed.json()] == ["referral_record", "discharge_summary"]
    got = await client.get(
        f"/v1/referrals/{ref['id']}/documents/{pdf.json()['id']}/content", headers=auth(HOSPITAL)
    )
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["cache-control"] == "no-store"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "attachment" in got.headers["content-disposition"]
    assert quote(FILE_NAME, safe="") in got.headers["content-disposition"]
    xml = await client.get(
        f"/v1/referrals/{ref['id']}/documents/{cda.json()['id']}/content", headers=auth(CLINIC)
    )
    assert xml.content == CDA and xml.headers["content-type"].startswith("application/xml")
    for outsider in ("demo clinic ZH-THC-LY", "demo hospital HZ-FPH"):
        assert (
            await client.get(f"/v1/referrals/{ref['id']}/documents", headers=auth(outsider))
        ).status_code == 404
        assert (
            await client.get(
                f"/v1/referrals/{ref['id']}/documents/{pdf.json()['id']}/content",
                headers=auth(outsider),
            )
        ).status_code == 404
        refused = await _attach(client, auth, ref, PDF, "application/pdf", who=outsider)
        assert refused.status_code == 404
    # sealed at rest: neither the content nor the file name is stored readable
    async with app.state.database.unit_of_work(read_only=True) as session:
        rows = (await session.execute(text("SELECT sealed FROM document_content"))).all()
        meta = (await session.execute(text("SELECT sealed_meta FROM referral_document"))).all()
    stored = b"".join(bytes(r[0]) for r in rows)
    assert len(rows) == 2 and b"patient-visible" not in stored and "冠心病".encode() not in stored
    assert all(FILE_NAME not in m[0] and "测试患者甲" not in m[0] for m in meta)


async def test_the_type_is_the_contents(api, client, auth) -> None:
    ref = await _referral(api)
    cases = [
        (PNG, "application/pdf"),  # a PNG called a PDF
        (PDF, "image/png"),
        (b"hello", "application/pdf"),
        (b"MZ\x90\x00", "application/octet-stream"),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
            b'<ClinicalDocument xmlns="urn:hl7-org:v3">&a;</ClinicalDocument>',
            "application/xml",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd">'
            b'<ClinicalDocument xmlns="urn:hl7-org:v3"/>',
            "application/xml",
        ),
        (b"<html><body>not a CDA</body></html>", "text/xml"),
        (
            GB18030_CDA,
            "application/xml",
        ),
        (b"", "application/pdf"),
    ]
    for content, media in cases:
        r = await _attach(client, auth, ref, content, media)
        assert r.status_code == 415, (media, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["errors"][0]["loc"] == ["body"]
    listed = await client.get(f"/v1/referrals/{ref['id']}/documents", headers=auth(CLINIC))
    assert listed.json() == []


async def test_twenty_mebibytes_is_the_cap(api, client, auth, app) -> None:
    ref = await _referral(api)
    cap = app.state.settings.document_max_bytes
    assert cap == 20 * 1024 * 1024
    big = PDF + b"0" * (2 * 1024 * 1024)  # over the 1 MiB of every other request
    assert (await _attach(client, auth, ref, big, "application/pdf")).status_code == 201
    over = PDF + b"0" * cap
    r = await _attach(client, auth, ref, over, "application/pdf")
    assert r.status_code == 413, r.text
    # any other request keeps the 1 MiB limit
    r = await client.post(
        "/v1/routing/preview", content=b"{" + b" " * (2 * 1024 * 1024) + b"}", headers=auth(CLINIC)
    )
    assert r.status_code == 413


async def test_the_uploader_withdraws_its_document(api, client, auth) -> None:
    ref = await _referral(api)
    doc = (await _attach(client, auth, ref, PDF, "application/pdf")).json()
    url = f"/v1/referrals/{ref['id']}/documents/{doc['id']}"
    assert (await client.delete(url, headers=auth(HOSPITAL))).status_code == 403
    assert (await client.delete(url, headers=auth(CLINIC))).status_code == 204
    assert (await client.get(url + "/content", headers=auth(HOSPITAL))).status_code == 404
    events = await client.get(f"/v1/referrals/{ref['id']}/events", headers=auth(CLINIC))
    types = [e["type"] for e in events.json()]
    assert types.count("document_attached") == 1 and types.count("document_withdrawn") == 1
