"""docker-compose.yml and the Dockerfile, checked without a Docker engine: a real Compose
parser (Debian's docker-compose) resolves the file, and every service's command must be
something the image the Dockerfile builds provides."""

from __future__ import annotations

import importlib.metadata as md
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from groupwise.studyfiles import read_study

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

pytestmark = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="needs a Compose parser: apt-get install docker-compose (.ci/run installs it)",
)


def compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker-compose", "--env-file", str(env_file), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def resolved() -> dict:
    done = compose_config(ENV_EXAMPLE)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_the_stack_has_every_service(resolved):
    services = resolved["services"]
    assert set(services) == {"postgres", "ray-head", "ray-worker", "dashboard", "api", "groupwise"}
    # PostgreSQL keeps its data on a named volume.
    assert any(
        v.startswith("pgdata:/var/lib/postgresql/data") for v in services["postgres"]["volumes"]
    )
    assert "pgdata" in resolved["volumes"]
    # Ray workers reserve NVIDIA GPUs.
    devices = services["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
    # The dashboard and the driver use the same database as PostgreSQL serves, from the
    # environment: no service has a password on its command line (ps would show it).
    storage = services["groupwise"]["environment"]["GROUPWISE_STORAGE"]
    assert services["dashboard"]["environment"]["GROUPWISE_STORAGE"] == storage
    assert services["api"]["environment"]["GROUPWISE_STORAGE"] == storage
    assert (
        storage.startswith("postgresql+psycopg://groupwise:")
        and "@postgres:5432/groupwise" in storage
    )
    password = storage.split(":")[2].split("@")[0]
    assert not any(password in " ".join(v.get("command") or []) for v in services.values())
    # The dashboard and the API bind to loopback on the host unless changed on purpose.
    for name in ("dashboard", "api"):
        assert all(p.startswith("127.0.0.1:") for p in services[name]["ports"])
    # The API serves the stack's database and runs its jobs on the stack's Ray cluster, with
    # tokens from .env.
    api = services["api"]
    assert api["command"][0] == "serve" and "--ray-address" in api["command"]
    assert api["command"][api["command"].index("--ray-address") + 1] == "ray-head:6380"
    assert api["environment"]["GROUPWISE_API_TOKENS"]


def test_secrets_come_from_the_env_file_only(tmp_path):
    secrets = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    text = COMPOSE.read_text()
    for name in ("POSTGRES_PASSWORD", "RAY_AUTH_TOKEN", "GROUPWISE_API_TOKENS"):
        assert secrets[name] not in text
        assert f"${{{name}:?" in text  # required, not defaulted
    empty = tmp_path / "empty.env"
    empty.write_text("")
    done = compose_config(empty)
    assert done.returncode != 0 and "POSTGRES_PASSWORD" in done.stderr
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def _installed_by_dockerfile() -> tuple[set[str], set[str]]:
    """(distributions its `pip install` lines ask for, programs it copies onto PATH)."""
    text = (ROOT / "Dockerfile").read_text()
    args = dict(re.findall(r'^ARG (\w+)="([^"]*)"', text, re.MULTILINE))
    wanted, copied = set(), set()
    for line in re.findall(r"^RUN pip install (.+)$", text, re.MULTILINE):
        tokens = shlex.split(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], line))
        for before, token in zip([None, *tokens], tokens, strict=False):
            if before == "-c":  # a constraints file, not a requirement
                assert (ROOT / "docker" / token).exists() or (ROOT / token).exists()
            elif token == "." or token.startswith(".["):  # this project, maybe with extras
                wanted.add("groupwise")
            elif not token.startswith("-"):
                wanted.add(Requirement(token).name)
    for source, target in re.findall(r"^COPY (?:--\S+ )*(\S+) (\S+)$", text, re.MULTILINE):
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is not in the repo"
        if target.startswith("/usr/local/bin/"):
            copied.add(Path(target).name)
    return wanted, copied


def _console_scripts(roots: set[str]) -> set[str]:
    """Every console script of ``roots`` and what they require, as installed here (the same
    requirements the image resolves)."""
    seen, todo, scripts = set(), list(roots), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        dist = md.distribution(name)
        scripts |= {ep.name for ep in dist.entry_points if ep.group == "console_scripts"}
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return scripts


def test_every_command_exists_in_the_image(resolved):
    wanted, copied = _installed_by_dockerfile()
    assert {"torch", "groupwise"} <= wanted
    provided = _console_scripts(wanted) | copied
    assert {"groupwise", "ray", "optuna-dashboard"} <= provided
    for name, service in resolved["services"].items():
        if service["image"] != "groupwise:latest":
            continue
        for program in [*(service.get("entrypoint") or []), service["command"][0]][:2]:
            if program in ("launch", "status", "serve"):  # groupwise's, after its entrypoint
                continue
            assert program in provided, f"service {name} runs {program!r}; the image lacks it"
    driver = (ROOT / "docker" / "groupwise-driver").read_text()
    assert "\nray start " in driver and "\nexec groupwise " in driver


def test_the_driver_launches_a_shipped_study(resolved):
    command = resolved["services"]["groupwise"]["command"]
    assert command[0] == "launch"
    spec = read_study(ROOT / command[1])  # as the image has it: WORKDIR /app holds studies/
    assert spec.name
    assert "--ray-address" in command
    assert command[command.index("--ray-address") + 1] == "ray-head:6380"
    assert "--port=6380" in resolved["services"]["ray-head"]["command"]
    # The GPU study the README points to packs four trials per GPU.
    assert read_study(ROOT / "studies" / "tiny_transformer_gpu.yaml").workers.gpus_per_trial == 0.25


def test_services_wait_for_healthy_dependencies(resolved):
    services = resolved["services"]
    for name in ("ray-head", "dashboard", "postgres", "api"):
        assert services[name]["healthcheck"]["test"], name
    assert services["ray-head"]["healthcheck"]["test"][1:3] == ["ray", "health-check"]
    for name, needs in {
        "ray-worker": ["ray-head"],
        "dashboard": ["postgres"],
        "groupwise": ["postgres", "ray-head"],
        "api": ["postgres", "ray-head"],
    }.items():
        for dependency in needs:
            assert services[name]["depends_on"][dependency]["condition"] == "service_healthy"


@pytest.mark.parametrize(
    "secret", ["POSTGRES_PASSWORD", "RAY_AUTH_TOKEN", "GROUPWISE_STORAGE", "GROUPWISE_API_TOKENS"]
)
def test_the_entrypoint_refuses_placeholder_secrets(tmp_path, secret):
    """Every groupwise container starts through docker/groupwise-entrypoint (run here with
    sh, as the image runs it)."""
    placeholders = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    value = placeholders.get(secret, "postgresql+psycopg://g:change-me-x@db/g")
    script = str(ROOT / "docker" / "groupwise-entrypoint")
    refused = subprocess.run(
        ["sh", script, "true"], env={secret: value}, capture_output=True, text=True, timeout=30
    )
    assert refused.returncode == 2 and secret in refused.stderr and "placeholder" in refused.stderr
    ran = subprocess.run(
        ["sh", script, "echo", "ran"],
        env={secret: "a-real-secret"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ran.returncode == 0 and ran.stdout.strip() == "ran"
