"""Green channel: pathways, milestones and the figures."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import PrincipalDep, SessionDep
from app.api.errors import problem_responses
from app.api.routes.lifecycle import UserId
from app.api.schemas.common import IsoDate
from app.api.schemas.pathways import (
    GreenChannelRow,
    MilestoneIn,
    MilestonesOut,
    PathwayOut,
    PathwayPatch,
    TargetResultOut,
)
from app.services import green_channel_figures, pathways

router = APIRouter(prefix="/v1", tags=["green channel"], responses=problem_responses(401, 422, 429))


ConsortiumQuery = Annotated[
    str | None,
    Query(
        max_length=36,
        description="Admin only: whose targets (default: the shared defaults). Other keys "
        "always get their own consortium's.",
    ),
]


@router.get("/pathways", response_model=list[PathwayOut], responses=problem_responses(403))
async def list_pathways(
    session: SessionDep, principal: PrincipalDep, consortium: ConsortiumQuery = None
) -> list[PathwayOut]:
    """Pathways with the centre they need, their specialties and milestone time targets: the
    caller's consortium's own targets where it has them, otherwise the shared defaults."""
    rows = await pathways.list_pathways(session, principal, consortium)
    return [PathwayOut.model_validate(p) for p in rows]


@router.patch(
    "/pathways/{pathway_code}", response_model=PathwayOut, responses=problem_responses(403, 404)
)
async def update_pathway(
    pathway_code: str,
    body: PathwayPatch,
    session: SessionDep,
    principal: PrincipalDep,
    consortium: ConsortiumQuery = None,
) -> PathwayOut:
    """New time targets. A council changes its own consortium's only; an admin the shared
    defaults or a named consortium's. Past referrals keep the targets they had."""
    targets = [t.model_dump(by_alias=True) for t in body.targets]
    return PathwayOut.model_validate(
        await pathways.update_targets(session, principal, pathway_code, targets, consortium)
    )


def milestones_out(view: pathways.MilestoneView) -> MilestonesOut:
    return MilestonesOut(
        pathway_code=view.pathway_code,
        pathway_version=view.pathway_version,
        milestones=view.milestones,
        targets=[TargetResultOut.model_validate(t) for t in view.targets],
        overflow=view.overflow,
    )


@router.get(
    "/referrals/{referral_id}/milestones",
    response_model=MilestonesOut,
    responses=problem_responses(404, 409),
)
async def get_milestones(
    referral_id: str, session: SessionDep, principal: PrincipalDep
) -> MilestonesOut:
    """Recorded milestones and each target: met, missed or pending."""
    return milestones_out(await pathways.milestones(session, principal, referral_id))


@router.post(
    "/referrals/{referral_id}/milestones",
    response_model=MilestonesOut,
    status_code=201,
    responses=problem_responses(403, 404, 409),
)
async def record_milestone(
    referral_id: str,
    body: MilestoneIn,
    session: SessionDep,
    principal: PrincipalDep,
    user: UserId = None,
) -> MilestonesOut:
    """Record a milestone with the time it happened (back-dating allowed, no future times)."""
    view = await pathways.record_milestone(
        session, principal, referral_id, body.milestone, body.at, user
    )
    return milestones_out(view)


@router.get(
    "/reports/green-channel", response_model=list[GreenChannelRow], responses=problem_responses(403)
)
async def green_channel_report(
    session: SessionDep,
    principal: PrincipalDep,
    from_: Annotated[IsoDate, Query(alias="from", description="First local day, inclusive.")],
    to: Annotated[IsoDate, Query(description="Last local day, exclusive.")],
    consortium: Annotated[str | None, Query(max_length=36)] = None,
) -> list[GreenChannelRow]:
    """Per pathway, receiving hospital and month: count, median and 90th percentile of each
    interval, share meeting its target, overflow count."""
    rows = await green_channel_figures.report(session, principal, consortium, from_, to)
    return [GreenChannelRow.model_validate(r) for r in rows]
