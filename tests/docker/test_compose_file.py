"""docker-compose.yml and its GPU override, checked against the Compose Specification without a Docker engine."""

import copy
import hashlib
import json
import re

import jsonschema
import pytest
import yaml
from dockerspec import (
    COMPOSE,
    COMPOSE_GPU,
    SCHEMA,
    as_argv,
    compose_config,
    compose_variables,
    env_example,
    env_of,
    interpolate_str,
    load_yaml,
    named_mounts,
)

SCHEMA_SHA256 = "46b7d35f19dd93a05f8fea530291bf84d881c1791ec167ecf0e6fb94e639d496"  # tests/docker/SCHEMA_SOURCE.md


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _errors(validator: jsonschema.Draft7Validator, doc: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def test_vendored_schema_is_the_recorded_copy():
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256
    assert json.loads(SCHEMA.read_text())["title"] == "Compose Specification"


@pytest.mark.parametrize("path", [COMPOSE, COMPOSE_GPU], ids=lambda p: p.name)
def test_compose_files_follow_the_compose_specification(validator, path):
    """As written (before interpolation, as `docker compose config` validates) and interpolated."""
    assert _errors(validator, load_yaml(path)) == []
    assert _errors(validator, compose_config(path)) == []


def test_merged_gpu_config_follows_the_compose_specification(validator):
    assert _errors(validator, compose_config(COMPOSE, COMPOSE_GPU)) == []


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d["services"]["api"].__setitem__("healthchek", {}),  # a typo'd key
        lambda d: d["services"]["api"].__setitem__("ports", 8000),  # wrong type
        lambda d: d["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"][0].pop("capabilities"),
    ],
    ids=["unknown-key", "wrong-type", "gpu-without-capabilities"],
)
def test_schema_check_catches_broken_files(validator, breakage):
    """The validator is not vacuous: the mistakes a hand edit makes are reported."""
    doc = copy.deepcopy(compose_config(COMPOSE, COMPOSE_GPU))
    breakage(doc)
    assert _errors(validator, doc)


def test_compose_snippets_in_the_deploy_docs_are_valid_overrides(validator):
    """The yaml blocks of docs/deploy.md (e.g. one worker per GPU) are overrides that keep the file valid."""
    text = (COMPOSE.parent / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert blocks
    for block in blocks:
        doc = _merge_override(compose_config(COMPOSE, COMPOSE_GPU), yaml.safe_load(block))
        assert _errors(validator, doc) == [], block
        for name, svc in yaml.safe_load(block)["services"].items():
            base = svc.get("extends", {}).get("service", name)
            assert base in doc["services"], f"docs/deploy.md extends an unknown service {base!r}"


def _merge_override(base: object, over: object) -> object:
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: _merge_override(base[k], v) if k in base else v for k, v in over.items()}}
    return over


def test_interpolation_follows_compose_rules():
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate_str("${SET:-d}|${EMPTY:-d}|${EMPTY-d}|${UNSET-d}|$SET|$${SET}", env) == "x|d||d|x|${SET}"
    assert interpolate_str("${SET:+alt}|${UNSET:+alt}", env) == "alt|"
    with pytest.raises(ValueError, match="MUST"):
        interpolate_str("${MUST:?set it}", env)


def test_redis_keeps_an_append_only_file_on_a_volume():
    redis = compose_config()["services"]["redis"]
    argv = as_argv(redis["command"])
    assert argv[0] == "redis-server"
    opts = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert opts["--appendonly"] == "yes"
    assert named_mounts(redis).get(opts["--dir"]) == "redis-data"
    assert "redis-data" in compose_config()["volumes"]
    assert as_argv(redis["healthcheck"]["test"])[:2] == ["CMD", "redis-cli"]


def test_api_publishes_port_8000_and_checks_readyz():
    cfg = compose_config()
    api = cfg["services"]["api"]
    assert api["ports"] == ["8000:8000"]
    assert env_of(api)["CGN_PORT"] == "8000"
    assert as_argv(api["healthcheck"]["test"]) == ["CMD", "cgn-healthcheck", "http://127.0.0.1:8000/readyz"]
    assert compose_config(env={"CGN_HTTP_PORT": "9000"})["services"]["api"]["ports"] == ["9000:8000"]


def test_worker_can_be_scaled():
    """`--scale worker=N` fails on a fixed container name or a published host port."""
    worker = compose_config()["services"]["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert as_argv(worker["command"])[:2] == ["cgn", "worker"]
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", ["api", "worker"])
def test_model_store_and_results_are_shared_volumes_at_the_configured_paths(service):
    """api and worker mount the same named volumes where CGN_MODEL_STORE / CGN_RESULTS_DIR point, so a
    `docker compose run --rm api cgn models pull ...` lands where both read, and the API serves the
    shards the workers write."""
    cfg = compose_config()
    svc = cfg["services"][service]
    env, mounts = env_of(svc), named_mounts(svc)
    assert mounts[env["CGN_MODEL_STORE"]] == "models"
    assert mounts[env["CGN_RESULTS_DIR"]] == "results"
    assert mounts[env["CGN_ASSETS_DIR"]] == "assets"
    assert {"models", "results", "assets"} <= set(cfg["volumes"])
    assert env["CGN_REDIS_URL"] == "redis://redis:6379/0"


@pytest.mark.parametrize("service", ["api", "worker"])
def test_gpu_override_reserves_nvidia_gpus_and_builds_cuda(service):
    base = compose_config()["services"][service]
    gpu = compose_config(COMPOSE, COMPOSE_GPU)["services"][service]
    assert "deploy" not in base and base["build"]["args"]["FLAVOUR"] == "cpu"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["build"]["args"]["FLAVOUR"] == "cuda"
    assert gpu["build"]["target"] == base["build"]["target"]  # the override changes the flavour only
    assert gpu["image"].endswith(":cuda") and base["image"].endswith(":cpu")
    assert env_of(gpu)["CGN_DEVICE"] == "cuda"
    assert env_of(gpu)["CGN_MODEL_STORE"] == env_of(base)["CGN_MODEL_STORE"]  # merged, not replaced


def test_environment_names_are_settings_the_service_reads():
    """A misspelt CGN_* variable would be ignored silently (Settings has extra="ignore")."""
    from service.settings import Settings

    fields = {f"CGN_{name.upper()}" for name in Settings.model_fields}
    for path in (COMPOSE, COMPOSE_GPU):
        for name, svc in compose_config(path)["services"].items():
            unknown = {k for k in env_of(svc) if k.startswith("CGN_")} - fields
            assert not unknown, f"{path.name}: {name}: not Settings fields: {sorted(unknown)}"


def test_env_example_documents_every_variable_and_only_real_ones():
    from service.settings import Settings

    documented = env_example()
    fields = {f"CGN_{name.upper()}" for name in Settings.model_fields}
    used_by_compose = compose_variables()
    assert used_by_compose <= set(documented), "compose variables missing from .env.example"
    unknown = {k for k in documented if k.startswith("CGN_")} - fields - used_by_compose
    assert not unknown, f".env.example names variables nothing reads: {sorted(unknown)}"
    others = {k for k in documented if not k.startswith("CGN_")}
    assert others <= {"COMPOSE_FILE", "COMPOSE_PROJECT_NAME"}, others
    # every entry has its own description on the line above
    var = re.compile(r"^#?\s*[A-Z][A-Z0-9_]*=")
    lines = (COMPOSE.parent / ".env.example").read_text().splitlines()
    for k, line in enumerate(lines):
        if var.match(line):
            above = lines[k - 1] if k else ""
            assert above.startswith("#") and not var.match(above), f".env.example: no description above {line!r}"
