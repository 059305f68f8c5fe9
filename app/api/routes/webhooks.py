"""Webhook subscriptions, their delivery log and replays."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response, status

from app.api.deps import PageDep, PrincipalDep, SessionDep, SettingsDep, encode_cursor
from app.api.errors import problem_responses
from app.api.schemas.common import PageOf
from app.api.schemas.webhooks import (
    DeliveryOut,
    DeliveryState,
    ReplayedOut,
    RotateIn,
    SecretOut,
    SubscriptionCreated,
    SubscriptionIn,
    SubscriptionOut,
)
from app.services import webhook_deliveries, webhooks
from app.services.webhook_deliveries import DeliveryView

router = APIRouter(prefix="/v1", tags=["webhooks"], responses=problem_responses(401, 422, 429))

BASE = "/webhook-subscriptions"
ONE = BASE + "/{subscription_id}"


def _delivery_out(view: DeliveryView) -> DeliveryOut:
    d, e = view.delivery, view.event
    return DeliveryOut(
        id=d.id,
        event_id=e.id,
        event_type=e.type,
        referral_id=d.referral_id,
        state=DeliveryState(d.state),
        attempts=d.attempts,
        last_attempt_at=d.last_attempt_at,
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        next_attempt_at=d.next_attempt_at if d.state == DeliveryState.PENDING else None,
        give_up_at=d.give_up_at,
        delivered_at=d.delivered_at,
        dead_at=d.dead_at,
        created_at=d.created_at,
        payload=e.payload,
    )


@router.get(BASE, response_model=PageOf[SubscriptionOut], responses=problem_responses(403))
async def list_webhook_subscriptions(
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
    institution_id: Annotated[str | None, Query(max_length=36)] = None,
) -> PageOf[SubscriptionOut]:
    """Subscriptions the caller manages: its institution's (clinic, hospital), its
    consortium members' (council), all (admin)."""
    rows = await webhooks.list_subscriptions(
        session, principal, institution_id=institution_id, after=page.after, limit=page.limit
    )
    items = [SubscriptionOut.model_validate(r) for r in rows]
    cursor = encode_cursor(items[-1].id) if len(items) == page.limit else None
    return PageOf[SubscriptionOut](items=items, next_cursor=cursor)


@router.post(
    BASE,
    response_model=SubscriptionCreated,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(403),
)
async def create_webhook_subscription(
    body: SubscriptionIn,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    request: Request,
    response: Response,
) -> SubscriptionCreated:
    """Register an endpoint for event types. The signing secret is in this answer only.

    The URL's host must resolve to a public address, or to one the operator opened with
    ``REFERRAL_WEBHOOK_ALLOW``; the relay checks it again at every connection."""
    issued = await webhooks.create_subscription(
        session,
        settings,
        principal,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
        institution_id=body.institution_id,
        resolver=request.app.state.webhook_resolver,
    )
    response.headers["Location"] = f"/v1/webhook-subscriptions/{issued.subscription.id}"
    out = SubscriptionOut.model_validate(issued.subscription)
    return SubscriptionCreated(**out.model_dump(), secret=issued.secret)


@router.get(ONE, response_model=SubscriptionOut, responses=problem_responses(404))
async def get_webhook_subscription(
    subscription_id: str, session: SessionDep, principal: PrincipalDep
) -> SubscriptionOut:
    row = await webhooks.get_subscription(session, principal, subscription_id)
    return SubscriptionOut.model_validate(row)


@router.delete(
    ONE,
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(404),
)
async def delete_webhook_subscription(
    subscription_id: str, session: SessionDep, principal: PrincipalDep
) -> Response:
    """Stop deliveries to this endpoint; its delivery log is deleted with it."""
    await webhooks.delete_subscription(session, principal, subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(ONE + "/rotate-secret", response_model=SecretOut, responses=problem_responses(404))
async def rotate_webhook_secret(
    subscription_id: str,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    body: Annotated[RotateIn | None, Body()] = None,
) -> SecretOut:
    """A new secret, shown once. During the overlap every delivery carries two signatures
    (new and old, space-separated in `webhook-signature`)."""
    overlap = timedelta(seconds=(body or RotateIn()).overlap_seconds)
    issued = await webhooks.rotate_secret(
        session, settings, principal, subscription_id, overlap=overlap
    )
    return SecretOut(
        id=issued.subscription.id,
        secret=issued.secret,
        previous_secret_expires_at=issued.subscription.previous_secret_expires_at,
    )


@router.get(
    ONE + "/deliveries", response_model=PageOf[DeliveryOut], responses=problem_responses(404)
)
async def list_webhook_deliveries(
    subscription_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
    state: DeliveryState | None = None,
) -> PageOf[DeliveryOut]:
    """The delivery log, newest first: state, attempts, last status code, next retry."""
    views = await webhook_deliveries.list_deliveries(
        session,
        principal,
        subscription_id,
        state=state.value if state else None,
        before=page.after,
        limit=page.limit,
    )
    items = [_delivery_out(v) for v in views]
    cursor = encode_cursor(items[-1].id) if len(items) == page.limit else None
    return PageOf[DeliveryOut](items=items, next_cursor=cursor)


@router.post(
    ONE + "/deliveries/{delivery_id}/replay",
    response_model=DeliveryOut,
    responses=problem_responses(404, 409),
)
async def replay_webhook_delivery(
    subscription_id: str,
    delivery_id: str,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> DeliveryOut:
    """Send a dead-lettered (or delivered) delivery again, with the same webhook-id."""
    view = await webhook_deliveries.replay_delivery(
        session, settings, principal, subscription_id, delivery_id
    )
    return _delivery_out(view)


@router.post(
    ONE + "/deliveries/replay-dead", response_model=ReplayedOut, responses=problem_responses(404)
)
async def replay_dead_webhook_deliveries(
    subscription_id: str, session: SessionDep, settings: SettingsDep, principal: PrincipalDep
) -> ReplayedOut:
    """Queue every dead-lettered delivery of the subscription again (sent in event order)."""
    count = await webhook_deliveries.replay_dead(session, settings, principal, subscription_id)
    return ReplayedOut(replayed=count)
