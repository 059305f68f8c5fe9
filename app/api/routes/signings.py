"""Family-doctor signings: the signing clinic's HIS pushes, reads and ends its contracts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Response, status

from app.api.deps import PrincipalDep, ProtectorDep, SessionDep
from app.api.errors import problem_responses
from app.api.schemas.signings import SignedInstitutionOut, SigningIn, SigningOut
from app.services import signings
from app.services.signings import SigningView

router = APIRouter(prefix="/v1", tags=["signings"], responses=problem_responses(401, 422, 429))

ContractPath = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
        description="The signing clinic's own contract number.",
    ),
]


def _out(view: SigningView) -> SigningOut:
    row = view.row
    return SigningOut(
        contract_id=row.contract_id,
        institution_id=row.institution_id,
        institutions=[
            SignedInstitutionOut(institution_id=i.id, code=i.code, name=i.name, level=i.level)
            for i in view.institutions
        ],
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        resident_name=view.sealed["resident"]["name"],
        family_doctor=view.sealed.get("family_doctor"),
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.put(
    "/signings/{contract_id}",
    response_model=SigningOut,
    responses={**problem_responses(403), 201: {"model": SigningOut}},
)
async def put_signing(
    contract_id: ContractPath,
    response: Response,
    session: SessionDep,
    protector: ProtectorDep,
    principal: PrincipalDep,
    body: Annotated[SigningIn, Body()],
) -> SigningOut:
    """The signing clinic pushes a resident's 1+1+1 signing (201 new, 200 replaced or the same
    again). Routing then reads it for the resident's referrals unless a referral names its own
    `patient.signed_institution_ids`."""
    view, created = await signings.put(session, protector, principal, contract_id, body)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return _out(view)


@router.get(
    "/signings/{contract_id}", response_model=SigningOut, responses=problem_responses(403, 404)
)
async def get_signing(
    contract_id: ContractPath, session: SessionDep, protector: ProtectorDep, principal: PrincipalDep
) -> SigningOut:
    """One of the calling clinic's signings (others' are 404)."""
    return _out(await signings.get(session, protector, principal, contract_id))


@router.delete(
    "/signings/{contract_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(403, 404),
)
async def end_signing(
    contract_id: ContractPath, session: SessionDep, principal: PrincipalDep
) -> None:
    """The contract ended: routing no longer reads it."""
    await signings.end(session, principal, contract_id)
