#!/usr/bin/env python3
"""The two commands of the README; needs only Python 3.11+.

python3 dev.py run     # set up .venv, then serve the demo on http://127.0.0.1:8000
python3 dev.py test    # set up .venv with test tools, then lint, type-check and test
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("REFERRAL_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
PY_SOURCES = ("app", "migrations", "tests", "bench", "dev.py")


def sh(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], cwd=ROOT, check=True)


def ensure_venv(extras: str = "") -> None:
    if not PY.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    sh(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    sh(PY, "-m", "pip", "install", "--quiet", "-e", f".{extras}")


def run(extra: list[str]) -> int:
    ensure_venv()
    os.execv(str(BIN / "referral-service"), ["referral-service", "serve", "--demo", *extra])
    return 0  # not reached


def test(extra: list[str]) -> int:
    ensure_venv("[test]")
    try:
        sh(PY, "-m", "ruff", "check", *PY_SOURCES)
        sh(PY, "-m", "ruff", "format", "--check", *PY_SOURCES)
        sh(PY, "-m", "mypy")
        sh(BIN / "hadolint", "Dockerfile")
        sh(PY, "-m", "pytest", *extra)
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    return 0


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in {"run", "test"}:
        print(__doc__)
        return 2
    command, extra = sys.argv[1], sys.argv[2:]
    return run(extra) if command == "run" else test(extra)


if __name__ == "__main__":
    sys.exit(main())
