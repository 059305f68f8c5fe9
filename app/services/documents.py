"""Documents attached to a referral: uploaded by its source or its current target, read by
whoever may read the referral, sealed at rest (content, file name) and never logged.

Storage sits behind :class:`DocumentStore`: the content reaches it already sealed (AES-GCM,
bound to the document's id), so a store only ever holds ciphertext. The default keeps it in the
database, in the request's transaction (``document_content``). An object store (S3, OSS, MinIO)
is one more class with the same three methods: ``put`` writes the object under the document id
before the row commits, ``get`` reads it, ``delete`` removes it; objects whose row never
committed are orphans a periodic job can delete by listing ids without a row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import new_id, utcnow
from app.db.document_models import DocumentContent, ReferralDocument
from app.db.models import Referral
from app.domain.documents import DocumentRefused, DocumentType, check, clean_file_name
from app.domain.enums import Role
from app.domain.errors import Forbidden, NotFound, UnsupportedMediaType
from app.services import events
from app.services.auth import Principal
from app.services.crypto import PatientDataProtector
from app.services.views import visible


class DocumentStore(Protocol):
    async def put(self, session: AsyncSession, document_id: str, sealed: bytes) -> None: ...

    async def get(self, session: AsyncSession, document_id: str) -> bytes | None: ...

    async def delete(self, session: AsyncSession, document_id: str) -> None: ...


class DatabaseDocumentStore:
    """Sealed content in ``document_content``, written in the request's transaction."""

    async def put(self, session: AsyncSession, document_id: str, sealed: bytes) -> None:
        session.add(DocumentContent(document_id=document_id, sealed=sealed))

    async def get(self, session: AsyncSession, document_id: str) -> bytes | None:
        found = await session.get(DocumentContent, document_id)
        return None if found is None else bytes(found.sealed)

    async def delete(self, session: AsyncSession, document_id: str) -> None:
        found = await session.get(DocumentContent, document_id)
        if found is not None:
            await session.delete(found)


@dataclass(frozen=True, slots=True)
class DocumentView:
    row: ReferralDocument
    file_name: str


def _may_attach(principal: Principal, referral: Referral) -> bool:
    return principal.role in (Role.CLINIC, Role.HOSPITAL) and principal.institution_id in (
        referral.source_institution_id,
        referral.target_institution_id,
    )


def _view(protector: PatientDataProtector, row: ReferralDocument) -> DocumentView:
    meta = protector.open(row.sealed_meta, associated=row.id)
    return DocumentView(row, str(meta["file_name"]))


async def attach(
    session: AsyncSession,
    protector: PatientDataProtector,
    store: DocumentStore,
    principal: Principal,
    referral_id: str,
    *,
    content: bytes,
    declared_type: str | None,
    document_type: DocumentType,
    file_name: str | None,
    user: str | None,
) -> DocumentView:
    referral = await visible(session, principal, referral_id)
    if not _may_attach(principal, referral):
        raise Forbidden("Documents are attached by the referral's source or its current target.")
    try:
        media_type = check(content, declared_type)
    except DocumentRefused as exc:
        raise UnsupportedMediaType(
            "The body is not an accepted document (PDF, JPEG, PNG or CDA XML, as declared).",
            [{"loc": ["body"], "msg": exc.reason}],
        ) from exc
    document_id = new_id()
    name = clean_file_name(file_name, media_type)
    now = utcnow()
    row = ReferralDocument(
        id=document_id,
        referral_id=referral.id,
        document_type=str(document_type),
        media_type=str(media_type),
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        sealed_meta=protector.seal({"file_name": name}, associated=document_id),
        uploaded_by_institution_id=principal.institution_id or "",
        uploaded_by_user=user,
        uploaded_at=now,
    )
    session.add(row)
    await session.flush()  # the row before its content (a foreign key)
    await store.put(session, document_id, protector.seal_bytes(content, associated=document_id))
    events.record(
        session,
        referral,
        "document_attached",
        referral.status,
        at=now,
        actor_institution_id=principal.institution_id,
        actor_user=user,
        reason_code=str(document_type),
    )
    return DocumentView(row, name)


async def listed(
    session: AsyncSession, protector: PatientDataProtector, principal: Principal, referral_id: str
) -> list[DocumentView]:
    referral = await visible(session, principal, referral_id)
    rows = (
        await session.execute(
            select(ReferralDocument)
            .where(
                ReferralDocument.referral_id == referral.id,
                ReferralDocument.withdrawn_at.is_(None),
            )
            .order_by(ReferralDocument.uploaded_at, ReferralDocument.id)
        )
    ).scalars()
    return [_view(protector, r) for r in rows]


async def _document(
    session: AsyncSession, principal: Principal, referral_id: str, document_id: str
) -> tuple[Referral, ReferralDocument]:
    referral = await visible(session, principal, referral_id)
    row = await session.get(ReferralDocument, document_id)
    if row is None or row.referral_id != referral.id or row.withdrawn_at is not None:
        raise NotFound("No document with this id on this referral.")
    return referral, row


async def content(
    session: AsyncSession,
    protector: PatientDataProtector,
    store: DocumentStore,
    principal: Principal,
    referral_id: str,
    document_id: str,
) -> tuple[DocumentView, bytes]:
    _, row = await _document(session, principal, referral_id, document_id)
    sealed = await store.get(session, row.id)
    if sealed is None:
        raise NotFound("No document with this id on this referral.")
    data = protector.open_bytes(sealed, associated=row.id)
    if hashlib.sha256(data).hexdigest() != row.sha256:  # the AEAD tag makes this unreachable
        raise NotFound("No document with this id on this referral.")
    return _view(protector, row), data


async def withdraw(
    session: AsyncSession,
    store: DocumentStore,
    principal: Principal,
    referral_id: str,
    document_id: str,
    *,
    user: str | None,
) -> None:
    """The uploading institution withdraws its document: the content is deleted, the record
    (who, when, what kind) stays for the audit trail."""
    referral, row = await _document(session, principal, referral_id, document_id)
    if principal.institution_id != row.uploaded_by_institution_id:
        raise Forbidden("Only the institution that attached a document withdraws it.")
    row.withdrawn_at = utcnow()
    await store.delete(session, row.id)
    events.record(
        session,
        referral,
        "document_withdrawn",
        referral.status,
        at=row.withdrawn_at,
        actor_institution_id=principal.institution_id,
        actor_user=user,
        reason_code=row.document_type,
    )
