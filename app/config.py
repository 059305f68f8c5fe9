"""Settings from the environment (prefix ``REFERRAL_``)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.domain.localtime import DEFAULT_TIME_ZONE, validate_zone

DEMO_SECRET = "demo-only-secret-do-not-use-in-production"  # noqa: S105 - demo mode only
SECRET_FIELDS = ("api_key_pepper", "patient_data_key", "patient_hmac_key")
MIN_SECRET_BYTES = 32
MIN_DISTINCT_SECRET_BYTES = 16  # 32 random bytes have ~30 distinct values; "0000…" has one
SECRET_HINT = "python3 -c 'import secrets; print(secrets.token_hex(32))'"  # noqa: S105 - a command


class ConfigurationError(RuntimeError):
    """The settings cannot be used; the message says what to set."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REFERRAL_", env_file=None, extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///./referral.db",
        description="sqlite+aiosqlite:///path.db (embedded default) or postgresql+asyncpg://...",
    )
    demo_mode: bool = Field(default=False, description="Load demo consortia and demo API keys.")
    demo_keys_file: Path = Field(default=Path("demo-keys.json"))
    demo_allow_remote: bool = Field(
        default=False, description="Let demo mode listen on a non-loopback address."
    )

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    root_path: str = Field(default="", description="Path prefix the gateway mounts the API at.")
    forwarded_allow_ips: str = Field(
        default="127.0.0.1", description="Proxies trusted for X-Forwarded-* headers ('*' = any)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    api_key_pepper: SecretStr | None = None
    patient_data_key: SecretStr | None = Field(
        default=None, description="AES-256 key for patient identifiers at rest (base64, 32 bytes)."
    )
    patient_hmac_key: SecretStr | None = None

    default_time_zone: Annotated[str, AfterValidator(validate_zone)] = Field(
        default=DEFAULT_TIME_ZONE,
        description="IANA time zone of consortia created or loaded without one.",
    )

    census_stale_after_minutes: int = Field(
        default=720, description="A census older than this is stale: it ranks lower."
    )
    census_exclude_after_minutes: int = Field(
        default=4320, description="A census older than this excludes the institution."
    )
    census_slot_days_back: int = Field(
        default=1, ge=0, le=31, description="Slot days a census may give before today (UTC)."
    )
    census_slot_days_ahead: int = Field(
        default=90, ge=1, le=366, description="Slot days a census may give after today (UTC)."
    )
    idempotency_ttl_hours: int = Field(default=24, ge=24, description="How long keys are kept.")
    idempotency_in_flight_seconds: int = Field(
        default=60, description="An unfinished request older than this may be taken over."
    )

    db_connect_timeout_seconds: float = Field(
        default=5, gt=0, description="PostgreSQL: connection set-up and pool wait bound."
    )
    db_command_timeout_seconds: float = Field(
        default=30, gt=0, description="PostgreSQL: the driver's wait for any answer."
    )
    db_statement_timeout_ms: int = Field(
        default=20_000,
        gt=0,
        description="PostgreSQL statement_timeout; keep it below the idempotency in-flight window.",
    )
    db_lock_timeout_ms: int = Field(
        default=10_000, gt=0, description="PostgreSQL lock_timeout: the longest wait for a lock."
    )
    routing_policy_file: Path | None = Field(
        default=None,
        description="JSON routing policy (parent-only specialty matches per care type and "
        "consortium; default: the shipped example, app/data/routing_policy.json).",
    )
    service_levels_file: Path | None = Field(
        default=None, description="JSON of answer times per urgency (default: the shipped file)."
    )
    recognition_file: Path | None = Field(
        default=None,
        description="JSON of the consortium's mutually recognised test results, by version "
        "(default: the shipped example, app/data/recognition.json).",
    )
    targets_file: Path | None = Field(
        default=None,
        description="JSON of the council's appraisal targets, by version "
        "(default: the shipped example, app/data/targets.json).",
    )
    slot_reservation_file: Path | None = Field(
        default=None,
        description="JSON of the reserved referral slots policy, by version: the share of "
        "specialist outpatient sources offered to consortium referrals, the share of those kept "
        "for signed patients, and when the unused reserve is released "
        "(default: the shipped example, app/data/slot_reservation.json).",
    )
    icd10_catalogue_gb14396: Path | None = Field(
        default=None,
        description="CSV (code,name) of GB/T 14396-2016 codes: unknown codes are refused.",
    )
    icd10_catalogue_clinical_2: Path | None = Field(
        default=None,
        description="CSV (code,name) of the national clinical edition 2.0: unknown codes refused.",
    )
    icd10_catalogue_insurance_2: Path | None = Field(
        default=None,
        description="CSV (code,name) of the medical-insurance edition 2.0: unknown codes refused.",
    )
    sweep_interval_seconds: float = Field(
        default=30, ge=0, description="How often expired referrals are swept; 0 turns it off."
    )
    webhook_relay_interval_seconds: float = Field(
        default=2, ge=0, description="How often the webhook relay runs; 0 turns it off."
    )
    webhook_retention_days: int = Field(
        default=30,
        ge=1,
        description="Delivered webhook deliveries (and finished outbox rows) are deleted after "
        "this many days; dead-lettered ones stay until replayed.",
    )
    webhook_give_up_after_seconds: float = Field(
        default=86_400, gt=0, description="A delivery failing this long goes to the dead letters."
    )
    webhook_backoff_base_seconds: float = Field(
        default=5, gt=0, description="First retry delay; doubled after each failed attempt."
    )
    webhook_backoff_max_seconds: float = Field(
        default=3600, gt=0, description="Longest delay between two attempts."
    )
    webhook_allow: str = Field(
        default="",
        description="Private destinations webhooks may reach: comma-separated CIDRs or host "
        "names, each optionally with :port (default: public addresses only).",
    )
    webhook_timeout_seconds: float = Field(
        default=10, gt=0, description="Time for one delivery attempt (connect, send, answer)."
    )
    insurance_filing_valid_days: int = Field(
        default=90,
        ge=1,
        le=366,
        description="A referral filing's validity (2501 enddate = refl_date + this many days).",
    )

    sqlite_busy_timeout_ms: int = 5000
    db_pool_size: int = 10
    page_size_default: int = 50
    page_size_max: int = 200
    max_body_bytes: int = 1_048_576
    # a document attached to a referral (POST /v1/referrals/{id}/documents): 20 MiB, the size
    # IHE 360X allows a referral message; every other request keeps max_body_bytes
    document_max_bytes: int = 20 * 1_048_576

    # Reliability: per-key rate limit (app/api/ratelimit.py) and the drain step on SIGTERM.
    rate_limit_per_second: float = Field(
        default=20,
        ge=0,
        description="Requests per second per API key, per process (token bucket); 0 = off.",
    )
    rate_limit_burst: int = Field(
        default=40, ge=0, description="Bucket size: requests a key may send at once; 0 = off."
    )
    shutdown_drain_seconds: float = Field(
        default=0,
        ge=0,
        description="On SIGTERM, answer /readyz with 503 this long before stopping to serve.",
    )

    @field_validator("webhook_allow")
    @classmethod
    def _allow_list_readable(cls, value: str) -> str:
        from app.services.egress import parse_allow

        parse_allow(value)
        return value

    @model_validator(mode="after")
    def _secrets_present(self) -> Settings:
        if self.demo_mode:
            for name in SECRET_FIELDS:
                if getattr(self, name) is None:
                    setattr(self, name, SecretStr(DEMO_SECRET + ":" + name))
        return self

    def require_secrets(self) -> None:
        """Refuse to start outside demo mode when a secret is missing."""
        missing = [f"REFERRAL_{n.upper()}" for n in SECRET_FIELDS if getattr(self, n) is None]
        if missing:
            raise ConfigurationError(
                "Refusing to start: missing secret(s) "
                + ", ".join(missing)
                + ". Set them in the environment, or set REFERRAL_DEMO_MODE=true for a demo."
            )
        if self.demo_mode:
            return
        values = {n: self.secret(n) for n in SECRET_FIELDS}
        weak = [f"REFERRAL_{n.upper()}" for n, v in values.items() if not strong_secret(v)]
        if weak:
            raise ConfigurationError(
                "Refusing to start: weak secret(s) "
                + ", ".join(weak)
                + f" (need {MIN_SECRET_BYTES}+ random bytes, hex or base64; make one with "
                + SECRET_HINT
                + ")."
            )
        if len(set(values.values())) != len(values):
            raise ConfigurationError(
                "Refusing to start: the three secrets must differ; make each with " + SECRET_HINT
            )

    def require_safe_listen(self) -> None:
        """Demo mode (demo keys, weak demo secrets) listens on loopback unless told otherwise."""
        if self.demo_mode and not self.demo_allow_remote and not _is_loopback(self.host):
            raise ConfigurationError(
                "Refusing to start: demo mode listens on loopback only; use --host 127.0.0.1, "
                "or set REFERRAL_DEMO_ALLOW_REMOTE=true to expose the demo on purpose."
            )

    def secret(self, name: str) -> bytes:
        value = getattr(self, name)
        if value is None:
            raise ConfigurationError(f"REFERRAL_{name.upper()} is not set")
        secret: SecretStr = value
        return secret.get_secret_value().encode()

    @property
    def census_stale_after(self) -> timedelta:
        return timedelta(minutes=self.census_stale_after_minutes)

    @property
    def census_exclude_after(self) -> timedelta:
        return timedelta(minutes=self.census_exclude_after_minutes)

    @property
    def idempotency_ttl(self) -> timedelta:
        return timedelta(hours=self.idempotency_ttl_hours)

    @property
    def idempotency_in_flight(self) -> timedelta:
        return timedelta(seconds=self.idempotency_in_flight_seconds)


def decode_secret(value: bytes) -> bytes | None:
    """The key bytes of a hex or base64 (standard or URL-safe, padding optional) secret."""
    text = value.strip()
    try:
        return bytes.fromhex(text.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        pass
    padded = text + b"=" * (-len(text) % 4)
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            return decode(padded, validate=True) if decode is base64.b64decode else decode(padded)
        except (binascii.Error, ValueError):
            continue
    return None


def strong_secret(value: bytes) -> bool:
    raw = decode_secret(value)
    return (
        raw is not None
        and len(raw) >= MIN_SECRET_BYTES
        and len(set(raw)) >= MIN_DISTINCT_SECRET_BYTES
    )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@lru_cache
def get_settings() -> Settings:
    return Settings()
