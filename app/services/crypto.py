"""Patient data at rest: AES-GCM sealing and a keyed HMAC for matching identifiers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = b"v1"


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return hmac.new(secret, b"referral-service:" + purpose, hashlib.sha256).digest()


class PatientDataProtector:
    def __init__(self, data_secret: bytes, hmac_secret: bytes) -> None:
        self._aead = AESGCM(_derive(data_secret, b"aes-gcm"))
        self._hmac_key = _derive(hmac_secret, b"hmac")

    def seal(self, payload: dict[str, Any], *, associated: str) -> str:
        nonce = os.urandom(12)
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        sealed = self._aead.encrypt(nonce, data, associated.encode())
        return (VERSION + b"." + base64.b64encode(nonce + sealed)).decode()

    def open(self, token: str, *, associated: str) -> dict[str, Any]:
        version, _, body = token.encode().partition(b".")
        if version != VERSION:
            raise ValueError("unknown sealed-data version")
        raw = base64.b64decode(body)
        data = self._aead.decrypt(raw[:12], raw[12:], associated.encode())
        result: dict[str, Any] = json.loads(data)
        return result

    def seal_bytes(self, data: bytes, *, associated: str) -> bytes:
        """Raw bytes (a document) sealed: version, nonce, ciphertext and tag, as bytes."""
        nonce = os.urandom(12)
        return VERSION + b"." + nonce + self._aead.encrypt(nonce, data, associated.encode())

    def open_bytes(self, sealed: bytes, *, associated: str) -> bytes:
        version, body = sealed[:2], sealed[3:]
        if version != VERSION or sealed[2:3] != b".":
            raise ValueError("unknown sealed-data version")
        return self._aead.decrypt(body[:12], body[12:], associated.encode())

    def identifier_hmac(self, value: str) -> str:
        return hmac.new(self._hmac_key, value.encode(), hashlib.sha256).hexdigest()
