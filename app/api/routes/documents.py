"""Documents attached to a referral: upload (the raw file as the body), list, download,
withdraw."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated
from urllib.parse import quote, unquote

from fastapi import APIRouter, Header, Query, Request, Response, status
from pydantic import Field

from app.api.deps import PrincipalDep, ProtectorDep, SessionDep
from app.api.errors import problem_responses
from app.api.routes.lifecycle import UserId
from app.api.schemas.common import ResponseModel
from app.domain.documents import DECLARED, DocumentType
from app.services import documents
from app.services.documents import DocumentStore, DocumentView

router = APIRouter(prefix="/v1", tags=["documents"], responses=problem_responses(401, 422, 429))

_FILENAME_STAR = re.compile(r"filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)")
_FILENAME = re.compile(r'filename\s*=\s*"([^"]*)"|filename\s*=\s*([^;\s]+)')


class DocumentOut(ResponseModel):
    id: str
    referral_id: str
    document_type: DocumentType
    media_type: str = Field(description="What the content is, by its bytes.")
    size: int = Field(description="Bytes.")
    sha256: str = Field(description="Of the content, hex.")
    file_name: str = Field(description="As sent, made safe; with the extension of its type.")
    uploaded_by_institution_id: str
    uploaded_at: datetime


def _out(view: DocumentView) -> DocumentOut:
    r = view.row
    return DocumentOut(
        id=r.id,
        referral_id=r.referral_id,
        document_type=DocumentType(r.document_type),
        media_type=r.media_type,
        size=r.size,
        sha256=r.sha256,
        file_name=view.file_name,
        uploaded_by_institution_id=r.uploaded_by_institution_id,
        uploaded_at=r.uploaded_at,
    )


def _store(request: Request) -> DocumentStore:
    store: DocumentStore = request.app.state.document_store
    return store


def file_name_of(disposition: str | None) -> str | None:
    """The file name of a ``Content-Disposition`` header (RFC 6266: ``filename*`` first)."""
    if not disposition:
        return None
    star = _FILENAME_STAR.search(disposition)
    if star:
        return unquote(star.group(1).strip(), errors="replace")
    plain = _FILENAME.search(disposition)
    return (plain.group(1) or plain.group(2)) if plain else None


@router.post(
    "/referrals/{referral_id}/documents",
    response_model=DocumentOut,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(403, 404, 413, 415),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The file itself (not multipart), at most REFERRAL_DOCUMENT_MAX_BYTES "
            "(20 MiB). Its type is taken from its bytes and must be what Content-Type says.",
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}} for media in DECLARED
            },
        }
    },
)
async def attach_document(
    referral_id: str,
    request: Request,
    session: SessionDep,
    protector: ProtectorDep,
    principal: PrincipalDep,
    document_type: Annotated[DocumentType, Query(description="What the document is.")],
    content_disposition: Annotated[
        str | None,
        Header(
            max_length=1000,
            description="`attachment; filename*=UTF-8''<name>`: the file name (sealed at rest).",
        ),
    ] = None,
    user: UserId = None,
) -> DocumentOut:
    """Attach a PDF, JPEG, PNG or CDA XML document (a WS 445 referral record, a WS/T 500
    discharge summary): the referral's source or its current target."""
    view = await documents.attach(
        session,
        protector,
        _store(request),
        principal,
        referral_id,
        content=await request.body(),
        declared_type=request.headers.get("content-type"),
        document_type=document_type,
        file_name=file_name_of(content_disposition),
        user=user,
    )
    return _out(view)


@router.get(
    "/referrals/{referral_id}/documents",
    response_model=list[DocumentOut],
    responses=problem_responses(404),
)
async def list_documents(
    referral_id: str, session: SessionDep, protector: ProtectorDep, principal: PrincipalDep
) -> list[DocumentOut]:
    """The referral's documents (withdrawn ones left out), for whoever may read the referral."""
    return [_out(v) for v in await documents.listed(session, protector, principal, referral_id)]


@router.get(
    "/referrals/{referral_id}/documents/{document_id}/content",
    responses={
        **problem_responses(404),
        200: {"content": {m: {"schema": {"type": "string", "format": "binary"}} for m in DECLARED}},
    },
)
async def download_document(
    referral_id: str,
    document_id: str,
    request: Request,
    session: SessionDep,
    protector: ProtectorDep,
    principal: PrincipalDep,
) -> Response:
    """The document's bytes, as an attachment that a browser never renders in the page."""
    view, data = await documents.content(
        session, protector, _store(request), principal, referral_id, document_id
    )
    ascii_name = view.file_name.encode("ascii", "replace").decode().replace('"', "_")
    return Response(
        data,
        media_type=view.row.media_type,
        headers={
            "Content-Disposition": (
                f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''"
                f"{quote(view.file_name, safe='')}"
            ),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
        },
    )


@router.delete(
    "/referrals/{referral_id}/documents/{document_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(403, 404),
)
async def withdraw_document(
    referral_id: str,
    document_id: str,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    user: UserId = None,
) -> Response:
    """Withdraw a document (the institution that attached it): its content is deleted."""
    await documents.withdraw(
        session, _store(request), principal, referral_id, document_id, user=user
    )
    return Response(status_code=204)
