"""Podman helpers for the container test: a base image, wheels, the image build, containers.

Registry images cannot be pulled where this project is tested, so the base image is made from
Debian's packages (``debootstrap --variant=minbase``, imported with ``podman import``) and the
Python packages come as wheels built on the host (``pip wheel``, which uses the host's package
configuration) and copied into a copy of the build context. Both are cached between runs under
``REFERRAL_CONTAINER_CACHE`` (default ``/var/cache/referral-ci``): the base image in podman's own
storage, the wheels in a folder named after a hash of the dependency list.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("REFERRAL_CONTAINER_BASE", "localhost/referral-base:bookworm")
IMAGE = (
    "localhost/referral-service:"
    + tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]
)
CACHE = Path(os.environ.get("REFERRAL_CONTAINER_CACHE", "/var/cache/referral-ci"))
DEBIAN_MIRROR = os.environ.get("REFERRAL_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CONTEXT_PARTS = ("Dockerfile", "pyproject.toml", "README.md", "app", "migrations")


def missing_tools() -> list[str]:
    """What the test needs and the machine lacks (the test skips, naming them)."""
    needed = ["podman", "nginx"]
    missing = [tool for tool in needed if shutil.which(tool) is None]
    if runc() is None:
        missing.append("runc")
    return missing


def runc() -> str | None:
    return shutil.which("runc") or next(
        (p for p in ("/usr/sbin/runc", "/usr/bin/runc") if Path(p).exists()), None
    )


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(ROOT / "deploy" / "podman" / "containers.conf")}


def podman(
    *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", "--runtime", runc() or "runc", *args],
        env=podman_env(),
        check=check,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class Timings:
    steps: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, started: float) -> None:
        self.steps[name] = round(time.monotonic() - started, 1)


def ensure_base_image(timings: Timings) -> None:
    """The Debian base image, made once per machine (about 275 MB, a few minutes cold)."""
    started = time.monotonic()
    if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        timings.add("base_image_cached", started)
        return
    if shutil.which("debootstrap") is None:
        raise RuntimeError(
            "debootstrap is needed to make the base image (apt-get install debootstrap)"
        )
    rootfs = CACHE / "rootfs"
    if not (rootfs / "usr" / "bin" / "python3").exists():
        shutil.rmtree(rootfs, ignore_errors=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                "bookworm",
                str(rootfs),
                DEBIAN_MIRROR,
            ],
            check=True,
            capture_output=True,
            timeout=1800,
        )
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(
        ["podman", "--runtime", runc() or "runc", "import", "-", BASE_IMAGE],
        stdin=tar.stdout,
        env=podman_env(),
        check=True,
        capture_output=True,
        timeout=600,
    )
    tar.wait()
    timings.add("base_image_made", started)


def dependencies() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    build = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["build-system"]
    return ["hatchling==1.33.0", *build["requires"], *project["dependencies"]]


def wheelhouse(timings: Timings) -> Path:
    """Wheels of every dependency (and the build backend), built on the host and cached."""
    started = time.monotonic()
    deps = dependencies()
    digest = hashlib.sha256(json.dumps(deps).encode()).hexdigest()[:16]
    folder = CACHE / f"wheelhouse-{digest}"
    if not (folder / ".complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "-w", str(folder), *deps],
            check=True,
            capture_output=True,
            timeout=1200,
        )
        (folder / ".complete").write_text("ok\n")
        timings.add("wheels_built", started)
    else:
        timings.add("wheels_cached", started)
    return folder


def build_image(context: Path, timings: Timings) -> int:
    """Build the repository's Dockerfile from a copy of the context; returns the image size."""
    started = time.monotonic()
    for part in CONTEXT_PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, context / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, context / part)
    shutil.copytree(wheelhouse(timings), context / "wheelhouse")
    podman(
        "build",
        "--format",
        "docker",  # keeps HEALTHCHECK (the OCI format has none)
        "--build-arg",
        f"BASE_IMAGE={BASE_IMAGE}",
        "--build-arg",
        "PIP_NO_INDEX=1",
        "-t",
        IMAGE,
        str(context),
        timeout=1800,
    )
    timings.add("image_build", started)
    # each build of changed code leaves untagged layers; keep a day's worth for the cache
    podman("image", "prune", "-f", "--filter", "until=24h", check=False)
    size = podman("image", "inspect", IMAGE, "--format", "{{.Size}}").stdout.strip()
    return int(size)
