"""The committed OpenAPI document: rendered the same way by the CLI and the drift test."""

from __future__ import annotations

import json

from fastapi import FastAPI


def render(app: FastAPI) -> str:
    return json.dumps(app.openapi(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
