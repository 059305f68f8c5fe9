"""deploy/: the compose file, the nginx gateway and the Kubernetes manifests agree with each
other, with the Dockerfile, with the README's configuration table and with the code.

No container engine runs where this project is built and tested, so nothing here starts a
container: the files are parsed (YAML with PyYAML, nginx.conf and the Dockerfile as text) and
compared. No network, no docker.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cli import build_parser, cmd_migrate, cmd_serve
from app.config import SECRET_FIELDS, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PREFIX = "REFERRAL_"
REPLICAS = ("api-1", "api-2")
SECRET_VARS = {PREFIX + name.upper() for name in SECRET_FIELDS}


# --- the sources -------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))
    return data


def services() -> dict[str, Any]:
    result: dict[str, Any] = compose()["services"]
    return result


@cache
def manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object in deploy/k8s, by kind (one of each)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text("utf-8")):
            assert doc["kind"] not in found, f"two {doc['kind']} objects"
            found[doc["kind"]] = doc
    return found


def pod_spec(kind: str) -> dict[str, Any]:
    spec: dict[str, Any] = manifests()[kind]["spec"]["template"]["spec"]
    return spec


def container(kind: str) -> dict[str, Any]:
    (only,) = pod_spec(kind)["containers"]
    result: dict[str, Any] = only
    return result


@cache
def dockerfile() -> dict[str, list[str]]:
    """Instructions of the final stage, continuation lines joined: {"EXPOSE": ["8000"], ...}."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text("utf-8"))
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)
    final: dict[str, list[str]] = {}
    for line in stages[-1].splitlines()[1:]:
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            final.setdefault(word.upper(), []).append(rest.strip())
    return final


def docker_cmd() -> list[str]:
    (cmd,) = dockerfile()["CMD"]
    result: list[str] = json.loads(cmd)
    return result


def docker_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for value in dockerfile().get("ENV", []):
        for pair in shlex.split(value):
            name, _, setting = pair.partition("=")
            env[name] = setting
    return env


@cache
def nginx() -> str:
    text = (DEPLOY / "nginx.conf").read_text("utf-8")
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def nginx_block(header: str) -> str:
    """The body of `header { ... }` (nested blocks included)."""
    start = nginx().index(header + " {") + len(header) + 2
    depth, pos = 1, start
    while depth:
        depth += {"{": 1, "}": -1}.get(nginx()[pos], 0)
        pos += 1
    return nginx()[start : pos - 1]


@cache
def readme_settings() -> set[str]:
    """REFERRAL_* names of the README's configuration section."""
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"REFERRAL_[A-Z0-9_]+", section))


def settings_vars() -> set[str]:
    return {PREFIX + name.upper() for name in Settings.model_fields}


def project_version() -> str:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    version: str = pyproject["project"]["version"]
    return version


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (DEPLOY / "prod.env.example").read_text("utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def compose_env(service: str) -> dict[str, str]:
    env = services()[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: environment as a mapping"
    return {k: str(v) for k, v in env.items()}


def k8s_env() -> dict[str, str]:
    config: dict[str, str] = manifests()["ConfigMap"]["data"]
    secret: dict[str, str] = manifests()["Secret"]["stringData"]
    assert not set(config) & set(secret)
    return {**config, **secret}


def all_set_vars() -> dict[str, set[str]]:
    """Every variable a deploy file sets, by file."""
    found = {
        "compose.yaml": {n for s in ("migrate", *REPLICAS) for n in compose_env(s)},
        "prod.env.example": set(env_example()),
        "k8s/configmap.yaml": set(manifests()["ConfigMap"]["data"]),
        "k8s/secret.example.yaml": set(manifests()["Secret"]["stringData"]),
    }
    for kind in ("Deployment", "Job"):
        found[f"k8s {kind} env"] = {e["name"] for e in container(kind).get("env", [])}
    return found


# --- image and commands --------------------------------------------------------------------


def test_one_image_everywhere_matching_the_built_package() -> None:
    images = {services()[s]["image"] for s in ("migrate", *REPLICAS)}
    images |= {container(kind)["image"] for kind in ("Deployment", "Job")}
    assert len(images) == 1, images
    (image,) = images
    name, _, tag = image.rpartition(":")
    assert name.rsplit("/", 1)[-1] == "referral-service"
    assert tag == project_version()
    # the image installs exactly this version of the package
    assert any(f'"referral-service=={tag}"' in run for run in dockerfile()["RUN"])


def test_compose_builds_the_repository_dockerfile() -> None:
    for name in ("migrate", *REPLICAS):
        build = services()[name]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == ROOT / "Dockerfile"


def test_replicas_run_the_image_cmd_which_is_serve() -> None:
    cmd = docker_cmd()
    assert cmd == ["referral-service", "serve"]
    assert build_parser().parse_args(cmd[1:]).func is cmd_serve
    for name in REPLICAS:
        assert services()[name].get("command", cmd) == cmd
        assert "entrypoint" not in services()[name]
    api = container("Deployment")
    assert api.get("command", cmd) == cmd and "args" not in api


def test_migrate_is_the_same_command_in_compose_and_the_job() -> None:
    command = ["referral-service", "migrate"]
    assert services()["migrate"]["command"] == command
    assert container("Job")["command"] == command
    assert build_parser().parse_args(command[1:]).func is cmd_migrate
    assert pod_spec("Job")["restartPolicy"] in ("Never", "OnFailure")
    assert services()["migrate"]["restart"] == "no"


# --- ports, probes, user -------------------------------------------------------------------


def test_one_port_everywhere() -> None:
    (expose,) = dockerfile()["EXPOSE"]
    port = int(expose)
    assert int(docker_env()[PREFIX + "PORT"]) == port
    assert Settings.model_fields["port"].default == port
    for name in REPLICAS:
        assert int(compose_env(name)[PREFIX + "PORT"]) == port
    assert int(k8s_env()[PREFIX + "PORT"]) == port
    (container_port,) = container("Deployment")["ports"]
    assert container_port["containerPort"] == port
    (service_port,) = manifests()["Service"]["spec"]["ports"]
    assert service_port["targetPort"] in (port, container_port["name"])
    for upstream in re.findall(r"server\s+([\w.-]+):(\d+)", nginx_block("upstream referral_api")):
        assert int(upstream[1]) == port


def test_listen_on_all_interfaces_as_the_image_does() -> None:
    assert docker_env()[PREFIX + "HOST"] == "0.0.0.0"
    for name in REPLICAS:
        assert compose_env(name)[PREFIX + "HOST"] == "0.0.0.0"
    assert k8s_env()[PREFIX + "HOST"] == "0.0.0.0"


def test_probes_are_livez_and_readyz_which_exist() -> None:
    api = container("Deployment")
    assert api["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe in api:
            assert api[probe]["httpGet"]["port"] in ("http", 8000)
    (healthcheck,) = dockerfile()["HEALTHCHECK"]
    assert "/livez" in healthcheck  # what compose waits for (service_healthy)
    paths = json.loads((ROOT / "openapi" / "openapi.json").read_text("utf-8"))["paths"]
    assert {"/livez", "/readyz"} <= set(paths)


def test_non_root_user_of_the_dockerfile() -> None:
    (user,) = dockerfile()["USER"]
    uid, _, gid = user.partition(":")
    for kind in ("Deployment", "Job"):
        security = pod_spec(kind)["securityContext"]
        assert security["runAsNonRoot"] is True
        assert str(security["runAsUser"]) == uid
        if gid and "runAsGroup" in security:
            assert str(security["runAsGroup"]) == gid
        assert container(kind)["securityContext"]["allowPrivilegeEscalation"] is False


def test_resources_are_set() -> None:
    for kind in ("Deployment", "Job"):
        resources = container(kind)["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"]
        assert resources["limits"]["memory"]


# --- environment and secrets ---------------------------------------------------------------


def test_every_variable_set_is_a_setting_in_the_readme() -> None:
    known = settings_vars()
    for where, names in all_set_vars().items():
        ours = {n for n in names if n.startswith(PREFIX)}
        assert ours <= known, (where, ours - known)
        assert ours <= readme_settings(), (where, ours - readme_settings())
        others = names - ours
        assert others <= {"POSTGRES_PASSWORD"}, (where, others)


def test_the_secrets_are_the_three_required_ones_and_never_inline() -> None:
    required = {"REFERRAL_API_KEY_PEPPER", "REFERRAL_PATIENT_DATA_KEY", "REFERRAL_PATIENT_HMAC_KEY"}
    assert required == SECRET_VARS
    example = env_example()
    assert {n for n in example if n.startswith(PREFIX)} == SECRET_VARS
    secret = manifests()["Secret"]["stringData"]
    assert set(secret) == SECRET_VARS | {PREFIX + "DATABASE_URL"}  # the URL holds a password
    for name in ("migrate", *REPLICAS):
        assert services()[name]["env_file"] == "prod.env"
        assert not SECRET_VARS & set(compose_env(name)), "secrets come from the env file"
    assert not SECRET_VARS & set(manifests()["ConfigMap"]["data"])
    for kind in ("Deployment", "Job"):
        refs = container(kind)["envFrom"]
        assert {"secretRef": {"name": manifests()["Secret"]["metadata"]["name"]}} in refs
        assert {"configMapRef": {"name": manifests()["ConfigMap"]["metadata"]["name"]}} in refs


def test_examples_hold_placeholders_not_secrets() -> None:
    values = [*env_example().values(), *manifests()["Secret"]["stringData"].values()]
    for value in values:
        assert "change-me" in value, value
    assert not (DEPLOY / "prod.env").exists() or "prod.env" in (ROOT / ".gitignore").read_text()


def test_compose_database_is_the_postgres_service() -> None:
    postgres = services()["postgres"]
    assert postgres["image"] == "postgres:15"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    volume = postgres["volumes"][0].split(":")
    assert volume[1] == "/var/lib/postgresql/data" and volume[0] in compose()["volumes"]
    db = postgres["environment"]
    for name in ("migrate", *REPLICAS):
        url = compose_env(name)[PREFIX + "DATABASE_URL"]
        match = re.fullmatch(
            r"postgresql\+asyncpg://(\w+):(\$\{POSTGRES_PASSWORD[^}]*\})@(\w+):5432/(\w+)", url
        )
        assert match, url
        assert match.group(1) == db["POSTGRES_USER"] and match.group(4) == db["POSTGRES_DB"]
        assert match.group(3) == "postgres"
        assert match.group(2) == db["POSTGRES_PASSWORD"]


def test_compose_order_postgres_then_migrate_then_replicas() -> None:
    assert services()["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in REPLICAS:
        needs = services()[name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully"
    for name in REPLICAS:
        assert services()["nginx"]["depends_on"][name]["condition"] == "service_healthy"


# --- gateway -------------------------------------------------------------------------------


def test_gateway_publishes_both_replicas_under_the_root_path() -> None:
    root = {compose_env(name)[PREFIX + "ROOT_PATH"] for name in REPLICAS}
    root.add(k8s_env()[PREFIX + "ROOT_PATH"])
    assert root == {"/referral"}
    location = nginx_block("location /referral/")
    # proxy_pass with a URI part: nginx replaces the matched /referral/ with /
    assert re.search(r"proxy_pass\s+http://referral_api/;", location)
    servers = re.findall(r"server\s+([\w.-]+):\d+", nginx_block("upstream referral_api"))
    assert sorted(servers) == sorted(REPLICAS)
    assert services()["nginx"]["image"] == "nginx:1.27-alpine"
    mounts = services()["nginx"]["volumes"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in mounts


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Forwarded-For", "$proxy_add_x_forwarded_for"),
        ("X-Forwarded-Proto", "$scheme"),
        ("X-Forwarded-Host", "$host"),
        ("X-Request-ID", None),
    ],
)
def test_gateway_passes_forwarded_headers(header: str, value: str | None) -> None:
    found = re.findall(rf"proxy_set_header\s+{header}\s+(\S+);", nginx_block("location /referral/"))
    assert len(found) == 1, header
    if value:
        assert found[0] == value


def test_replicas_trust_forwarded_headers_from_the_gateway_only() -> None:
    gateway = services()["nginx"]["networks"]["backend"]["ipv4_address"]
    for name in REPLICAS:
        assert compose_env(name)[PREFIX + "FORWARDED_ALLOW_IPS"] == gateway
        assert "backend" in services()[name]["networks"]
    assert k8s_env()[PREFIX + "FORWARDED_ALLOW_IPS"] not in ("*", "")


def test_gateway_body_limit_is_the_service_limit() -> None:
    (limit,) = re.findall(r"client_max_body_size\s+(\d+)([km]?);", nginx())
    size = int(limit[0]) * {"": 1, "k": 1024, "m": 1024 * 1024}[limit[1]]
    assert size == Settings.model_fields["max_body_bytes"].default


# --- shutdown and availability -------------------------------------------------------------


def graceful_timeout() -> int:
    """The seconds `serve` gives in-flight requests on SIGTERM (app/cli.py)."""
    (seconds,) = re.findall(
        r"timeout_graceful_shutdown=(\d+)", (ROOT / "app" / "cli.py").read_text("utf-8")
    )
    return int(seconds)


def test_shutdown_fits_in_the_grace_periods() -> None:
    timeout = graceful_timeout()
    assert timeout == 20
    spec = pod_spec("Deployment")
    pre_stop = container("Deployment")["lifecycle"]["preStop"]
    sleep = int(pre_stop["exec"]["command"][-1]) if "exec" in pre_stop else 0
    sleep = sleep or int(pre_stop.get("sleep", {}).get("seconds", 0))
    assert sleep > 0, "the endpoint leaves the Service before SIGTERM"
    assert spec["terminationGracePeriodSeconds"] > sleep + timeout
    for name in REPLICAS:
        grace = services()[name]["stop_grace_period"]
        assert int(grace.removesuffix("s")) > timeout
    assert dockerfile()["STOPSIGNAL"] == ["SIGTERM"]


def test_two_replicas_a_budget_and_a_service_on_the_same_pods() -> None:
    deployment = manifests()["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    pdb = manifests()["PodDisruptionBudget"]
    assert pdb["apiVersion"] == "policy/v1" and pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    assert manifests()["Service"]["spec"]["selector"] == selector
    job_labels = manifests()["Job"]["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= job_labels.items(), "the Service must not select the Job"
