from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from app.api.schemas.common import ResponseModel, StrictModel


class FilingState(StrEnum):
    PENDING = "pending"
    FILED = "filed"
    CANCEL_PENDING = "cancel_pending"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"
    DEAD = "dead"
    MANUAL = "manual"


class FilingOperation(StrEnum):
    FILE = "file"
    CANCEL = "cancel"


class FilingOut(ResponseModel):
    id: str
    referral_id: str
    generation: int = Field(description="1 for the referral's first filing, 2 for the next, …")
    target_institution_id: str = Field(description="The receiving institution filed for.")
    tier: str = Field(description="The recorded tier that needs the filing.")
    state: FilingState = Field(
        description="pending (2501 queued or retried), filed, cancel_pending (2502 queued), "
        "cancelled, superseded (withdrawn before it was ever filed: nothing to cancel), dead "
        "(the gateway kept failing; `operation` says which message), manual (no gateway: "
        "download the payload and enter it by hand)."
    )
    operation: FilingOperation = Field(
        description="The message sent next (or last): file (2501) or cancel (2502)."
    )
    filing_number: str | None = Field(
        description="trt_dcla_detl_sn 待遇申报明细流水号, the platform's filing number."
    )
    attempts: int = Field(description="Attempts of the current operation.")
    last_attempt_at: datetime | None
    last_status_code: int | None = Field(description="HTTP status of the last answer, if any.")
    last_infcode: int | None = Field(description="The platform's infcode in the last answer.")
    last_error: str | None = Field(
        description="A coarse class: http_status, infcode, not_json, no_filing_number, "
        "no_gateway, timeout, refused, tls, dns, blocked, network. Never the answer's text."
    )
    next_attempt_at: datetime | None
    give_up_at: datetime | None
    created_at: datetime
    filed_at: datetime | None
    cancel_requested_at: datetime | None
    cancelled_at: datetime | None
    superseded_at: datetime | None
    dead_at: datetime | None


class GatewayIn(StrictModel):
    url: Annotated[str, StringConstraints(min_length=8, max_length=2000)] = Field(
        description="The regional insurance gateway's endpoint taking 2501 and 2502 messages: "
        "https (http only in demo mode), under the webhook egress rules.",
        examples=["https://ybgw.example.gov.cn/fsi/api"],
    )
    token: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = Field(
        None,
        description="Sent as `Authorization: Bearer …`; sealed at rest and never shown again.",
    )


class GatewayOut(ResponseModel):
    consortium_id: str
    configured: bool = Field(description="False: filings are manual (payload to download).")
    url: str | None
    has_token: bool
    updated_at: datetime | None
