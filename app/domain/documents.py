"""Documents attached to a referral: what kinds there are, and what a file is by its content.

A file is taken by what its bytes are, never by its name or the type a client claims: PDF
(``%PDF-``), JPEG (``FF D8 FF``), PNG (its 8-byte signature), or CDA R2 XML (a well-formed
``ClinicalDocument`` in the ``urn:hl7-org:v3`` namespace, such as a WS 445 referral record or a
WS/T 500 discharge summary). The declared ``Content-Type`` must agree. XML with a document type
declaration is refused outright (no DTD, no entities: no entity expansion and no external
fetch), and so is any encoding but UTF-8.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

CDA_NAMESPACE = "urn:hl7-org:v3"


class DocumentType(StrEnum):
    """What the document is, for the reader (codes of this service)."""

    REFERRAL_RECORD = "referral_record"  # 转诊(院)记录, e.g. CDA per WS 445
    DISCHARGE_SUMMARY = "discharge_summary"  # 出院小结, e.g. CDA per WS/T 500
    LAB_REPORT = "lab_report"  # 检验报告
    IMAGING_REPORT = "imaging_report"  # 检查报告 (imaging)
    ECG = "ecg"  # 心电图
    PATHOLOGY_REPORT = "pathology_report"  # 病理报告
    CONSENT = "consent"  # 知情同意书
    OTHER = "other"


class MediaType(StrEnum):
    PDF = "application/pdf"
    JPEG = "image/jpeg"
    PNG = "image/png"
    CDA = "application/xml"  # CDA R2 (text/xml and application/hl7-cda+xml are accepted)


#: declared Content-Type (without parameters) -> the media type it claims
DECLARED: dict[str, MediaType] = {
    "application/pdf": MediaType.PDF,
    "image/jpeg": MediaType.JPEG,
    "image/jpg": MediaType.JPEG,
    "image/png": MediaType.PNG,
    "application/xml": MediaType.CDA,
    "text/xml": MediaType.CDA,
    "application/hl7-cda+xml": MediaType.CDA,
}

#: file-name extension of each media type, for downloads
EXTENSION = {
    MediaType.PDF: ".pdf",
    MediaType.JPEG: ".jpg",
    MediaType.PNG: ".png",
    MediaType.CDA: ".xml",
}

_PNG = b"\x89PNG\r\n\x1a\n"
_XML_DECL = re.compile(rb"^<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")


class DocumentRefused(ValueError):
    """The content is not an accepted document (``reason`` says why, never what it held)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _cda(content: bytes) -> None:
    text = content[3:] if content.startswith(b"\xef\xbb\xbf") else content
    head = text.lstrip()[:200]
    declared = _XML_DECL.match(head)
    if declared and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        raise DocumentRefused("XML documents must be UTF-8")
    lowered = text.lower()
    if b"<!doctype" in lowered or b"<!entity" in lowered:
        raise DocumentRefused("XML with a document type declaration is not accepted")
    try:
        root = fromstring(text.decode("utf-8"), forbid_dtd=True)
    except DefusedXmlException as exc:
        raise DocumentRefused("XML with a document type declaration is not accepted") from exc
    except (ParseError, UnicodeDecodeError) as exc:
        raise DocumentRefused("not well-formed UTF-8 XML") from exc
    if root.tag != f"{{{CDA_NAMESPACE}}}ClinicalDocument":
        raise DocumentRefused("XML that is not an HL7 CDA ClinicalDocument")


def sniff(content: bytes) -> MediaType:
    """The media type of ``content`` by its bytes, or :class:`DocumentRefused`."""
    if not content:
        raise DocumentRefused("empty")
    if content.startswith(b"%PDF-"):
        return MediaType.PDF
    if content.startswith(b"\xff\xd8\xff"):
        return MediaType.JPEG
    if content.startswith(_PNG):
        return MediaType.PNG
    stripped = (content[3:] if content.startswith(b"\xef\xbb\xbf") else content).lstrip()
    if stripped.startswith(b"<"):
        _cda(content)
        return MediaType.CDA
    raise DocumentRefused("not a PDF, JPEG, PNG or CDA XML document")


def check(content: bytes, declared: str | None) -> MediaType:
    """The content's media type, which the declared ``Content-Type`` must name."""
    claimed = DECLARED.get((declared or "").split(";")[0].strip().lower())
    if claimed is None:
        raise DocumentRefused("Content-Type is not one of the accepted document types")
    found = sniff(content)
    if found is not claimed:
        raise DocumentRefused("the content is not what its Content-Type says")
    return found


_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


def clean_file_name(name: str | None, media_type: MediaType) -> str:
    """A file name safe to send back in Content-Disposition: no path, no control or reserved
    characters, at most 120 characters, with the extension of what the content is."""
    base = unicodedata.normalize("NFC", (name or "").strip()).rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base.rsplit("\\", 1)[-1]).strip(". ")
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem = stem[:100] or "document"
    return stem + EXTENSION[media_type]
