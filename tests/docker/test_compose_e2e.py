"""`docker compose up` without Docker: the exact commands docker-compose.yml gives redis, api and one worker,
with the compose environment (the image's ENV plus the service's `environment`), named volumes remapped to
a temp dir and container ports to free ports. Against them: the user's example request, a small batch job
end to end, and `docker compose run --rm api cgn models pull imagenet` (from a local mirror of a random tiny
ImageNet CGN) picked up by the running API without a restart.

What differs from Docker, and why: each service gets its own free port instead of its own network namespace,
listens on 127.0.0.1 (redis gets `--bind 127.0.0.1`), and a path inside a named volume becomes a directory
under the temp dir. Nothing else is added or changed.
"""

import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
from dockerspec import (
    COMPOSE,
    COMPOSE_GPU,
    ROOT,
    as_argv,
    compose_config,
    copy_sources,
    free_port,
    healthcheck_argv,
    image_env,
    parse_dockerfile,
)

sys.path.insert(0, str(ROOT / "tests" / "service"))
from servers import stop_processes  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]  # ~40 s on an idle 2-core machine

NEEDED = {  # module -> what provides it
    "cgn_cli.serve": "`cgn serve` (issue 4)",
    "cgn_cli.worker": "`cgn worker` (issue 5)",
    "cgn_cli.models": "`cgn models pull` (model store)",
    "service.app": "the FastAPI app (issue 4)",
    "service.routes.batches": "POST /batches (issue 5)",
    "cgn.imagenet.model": "the ImageNet CGN",
}
EXAMPLE = {"shape": "cow", "texture": "elephant", "bg": "moon"}
PNG = b"\x89PNG\r\n\x1a\n"
LOCAL = {"127.0.0.1", "localhost", "0.0.0.0"}


def _missing() -> list[str]:
    out = []
    for module, what in NEEDED.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            out.append(f"{module} ({what})")
    return out


class Deployment:
    """The compose project run as plain processes. An instance is a service name, or `worker#2` for the second
    container of `--scale worker=2`; `run(service, argv)` is `docker compose run --rm`."""

    def __init__(self, root: Path, files: tuple[Path, ...] = (COMPOSE,)):
        self.root = root
        self.config = compose_config(*files)
        self.services = self.config["services"]
        self.stages = parse_dockerfile()
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.ports: dict[tuple[str, int], int] = {}  # (instance, container port) -> free port here
        self.app_dir = root / "app"  # the containers' working directory: no .env there, as in the image
        self.home = root / "home"
        for d in (self.app_dir, self.home):
            d.mkdir(parents=True)

    # ---- the mapping Docker would do --------------------------------------------------------------
    @staticmethod
    def service_of(instance: str) -> str:
        return instance.split("#")[0]

    def listens_on(self, instance: str) -> set[int]:
        """Ports a container listens on: published ones, values of --*port options, *_PORT variables."""
        svc = self.services[self.service_of(instance)]
        found = {int(str(p).split(":")[-1]) for p in svc.get("ports") or []}
        argv = as_argv(svc.get("command"))
        found |= {int(v) for k, v in zip(argv, argv[1:], strict=False) if k.startswith("--") and k.endswith("port")}
        found |= {int(v) for k, v in (svc.get("environment") or {}).items() if k.endswith("_PORT")}
        return found

    def port(self, instance: str, container_port: int) -> int | None:
        if container_port not in self.listens_on(instance):
            return None
        return self.ports.setdefault((instance, container_port), free_port())

    def volume(self, name: str) -> Path:
        path = self.root / "volumes" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def mounts(self, instance: str) -> dict[str, Path]:
        out = {}
        for v in self.services[self.service_of(instance)].get("volumes") or []:
            source, target = v.split(":")[:2]
            out[target] = self.volume(source)
        return out

    def remap(self, instance: str, value: str) -> str:
        for target, path in sorted(self.mounts(instance).items(), key=lambda kv: -len(kv[0])):
            if value == target or value.startswith(target + "/"):
                value = str(path) + value[len(target) :]
                break

        def host_port(m: re.Match) -> str:
            host, port = m.group(1), int(m.group(2))
            owner = host if host in self.services else instance if host in LOCAL else None
            mapped = self.port(owner, port) if owner else None
            return m.group(0) if mapped is None else f"127.0.0.1:{mapped}"

        value = re.sub(r"([A-Za-z0-9_.-]+):(\d{2,5})\b", host_port, value)
        if value.isdigit() and self.port(instance, int(value)) is not None:
            value = str(self.port(instance, int(value)))
        return "127.0.0.1" if value == "0.0.0.0" else value

    def executable(self, name: str) -> list[str]:
        """What the image's PATH would find: a file the Dockerfile COPYs there, the package's console script,
        or a system program (redis-server, redis-cli)."""
        copied = {dest: src for src, dest in copy_sources(self.stages["server"])}
        for dest, src in copied.items():
            if dest.startswith("/usr/local/bin/") and Path(dest).name == name:
                return [sys.executable, str(ROOT / src)]
        scripts = Path(sysconfig.get_path("scripts")) / name
        if scripts.is_file():
            return [str(scripts)]
        found = shutil.which(name)
        assert found, f"{name} is not installed here"
        return [found]

    def argv(self, instance: str, argv: list[str]) -> list[str]:
        return self.executable(argv[0]) + [self.remap(instance, a) for a in argv[1:]]

    def env(self, instance: str) -> dict[str, str]:
        svc = self.services[self.service_of(instance)]
        env = {"PATH": f"{sysconfig.get_path('scripts')}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        env |= {"HOME": str(self.home), "LANG": "C.UTF-8"}
        if "build" in svc:
            env |= image_env(self.stages[svc["build"]["target"]])
        env |= {k: str(v) for k, v in (svc.get("environment") or {}).items()}
        return {k: self.remap(instance, v) for k, v in env.items()}

    # ---- lifecycle ---------------------------------------------------------------------------------
    def start(self, instance: str, extra: tuple[str, ...] = ()) -> None:
        command = as_argv(self.services[self.service_of(instance)]["command"])
        log = self.root / f"{instance.replace('#', '-')}.log"
        self.logs[instance] = log
        with open(log, "wb") as out:
            self.procs[instance] = subprocess.Popen(
                self.argv(instance, command) + list(extra),
                env=self.env(instance),
                cwd=self.app_dir,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def healthy(self, instance: str) -> bool:
        argv = self.argv(instance, healthcheck_argv(self.services[self.service_of(instance)]))
        try:
            return subprocess.run(argv, env=self.env(instance), capture_output=True, timeout=30).returncode == 0
        except subprocess.TimeoutExpired:  # compose counts a timed-out check as a failed one
            return False

    def wait_healthy(self, instance: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[instance]
            if proc.poll() is not None:
                pytest.fail(f"{instance} exited with {proc.returncode}:\n{self.tail(instance)}")
            if self.healthy(instance):
                return
            time.sleep(0.5)
        pytest.fail(f"{instance} not healthy after {timeout} s:\n{self.tail(instance)}")

    def run(self, service: str, argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
        """`docker compose run --rm SERVICE argv...`: the service's image environment and volumes, argv instead of
        its command."""
        return subprocess.run(
            self.argv(service, argv), env=self.env(service), cwd=self.app_dir, capture_output=True, timeout=timeout
        )

    def tail(self, instance: str, n: int = 4000) -> str:
        log = self.logs.get(instance)
        return log.read_text(errors="replace")[-n:] if log and log.exists() else ""

    def stop(self) -> None:
        """Like `docker compose down`: SIGTERM to api and workers, then to redis; kill what outlives the grace."""
        for last in (False, True):
            stop_processes(*(p for i, p in self.procs.items() if (self.service_of(i) == "redis") == last), grace=15)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port('api', 8000)}"


def _default_model_is_built_in() -> str | None:
    from model_store.store import BUILTIN_DIR
    from service.settings import Settings

    default = Settings.model_fields["default_model"].default
    env = compose_config()["services"]["api"].get("environment") or {}
    default = env.get("CGN_DEFAULT_MODEL", default)
    if not (BUILTIN_DIR / default / "manifest.json").is_file():
        return f"model_store/builtin/{default}/ (the default model, CGN_DEFAULT_MODEL) is not in the tree yet"
    return None


WORKERS = ["worker", "worker#2"]  # docker compose up --scale worker=2


@pytest.fixture(params=["cpu", "gpu"])
def deployment(request, tmp_path: Path):
    """`docker compose up --scale worker=2`, or with the GPU override where this machine has a CUDA device."""
    missing = _missing()
    if missing:
        pytest.skip("not in the tree yet: " + "; ".join(missing))
    reason = _default_model_is_built_in()
    if reason:
        pytest.skip(reason)
    files = (COMPOSE,)
    if request.param == "gpu":
        import torch

        if not torch.cuda.is_available():
            pytest.skip("docker-compose.gpu.yml sets CGN_DEVICE=cuda; torch sees no CUDA device on this machine")
        files = (COMPOSE, COMPOSE_GPU)
    d = Deployment(tmp_path, files)
    try:
        d.start("redis", ("--bind", "127.0.0.1"))
        d.wait_healthy("redis", 15)
        for instance in ["api", *WORKERS]:
            d.start(instance)
        # generous: on a 2-core machine shared with training runs, importing torch alone can take a minute
        d.wait_healthy("api", 180)
        for instance in WORKERS:
            d.wait_healthy(instance, 120)
        yield d
    finally:
        d.stop()


@pytest.fixture
def imagenet_mirror(tmp_path: Path):
    """A local 'download site' serving a random tiny ImageNet CGN in the official cgn.pth layout."""
    import torch

    from cgn.imagenet.model import ImagenetCGN, ImagenetCGNConfig, to_official_state_dict

    site = tmp_path / "mirror"
    site.mkdir()
    model = ImagenetCGN(ImagenetCGNConfig.tiny()).init_random_(0).eval()
    torch.save(to_official_state_dict(model), site / "cgn.pth")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/cgn.pth"
    server.shutdown()
    server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _readme_block(title: str, lang: str) -> str:
    """The first `lang` block of a README section; the Docker section sends readers to these quick starts."""
    text = (ROOT / "README.md").read_text()
    assert "\n## Docker\n" in text, "README lost its Docker section"
    section = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(rf"```{lang}\n(.*?)```", section, re.S)
    assert blocks, f"README section {title!r} has no {lang} block"
    return blocks[0]


def test_compose_services_serve_the_example_and_a_batch_job(deployment: Deployment, imagenet_mirror: str):
    d = deployment
    default_model = d.env("api").get("CGN_DEFAULT_MODEL", "mnist-wildlife")
    # --- the README's quick starts, as written, against the compose deployment on the built-in models
    work = d.root / "readme"
    work.mkdir()
    curl = _readme_block("Quick start: HTTP", "bash").replace("http://localhost:8000", d.api_url)
    subprocess.run(["bash", "-euo", "pipefail", "-c", curl], cwd=work, check=True, timeout=300)
    assert (work / "cf.png").read_bytes()[:8] == PNG
    assert "cgn models pull imagenet" in (work / "cow.png").read_text()  # the 422 body, see below
    assert json.loads((work / "cf.json").read_text())["model"] == default_model
    sdk = _readme_block("Quick start: SDK", "python").replace("http://localhost:8000", d.api_url)
    ran = subprocess.run([sys.executable, "-c", sdk], cwd=work, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split()[0] == default_model

    with httpx.Client(base_url=d.api_url, timeout=180) as http:
        # --- the user's example on a deployment with only the built-in models: a clear 4xx (docs/service.md)
        r = http.post("/counterfactual", json=EXAMPLE)
        assert r.status_code == 422, r.text
        error = r.json()["error"]  # the shape docs/service.md documents for this decision
        assert (error["type"], error["field"], error["word"]) == ("unknown_name", "shape", "cow"), error
        assert "cgn models pull imagenet" in error["message"], error

        # --- a small batch job through Redis and the worker, shards in the shared results volume
        r = http.post("/batches", json={"n": 10, "shard_size": 4, "seed": 7})
        assert r.status_code == 202, r.text
        job = r.json()
        deadline = time.monotonic() + 60
        while job["state"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.3)
            job = http.get(f"/batches/{job['id']}").json()
        assert job["state"] == "completed", f"{job}\nworker log:\n{d.tail('worker')}"
        assert job["done"] == 10 and job["num_shards"] == 3
        keys = []
        for shard in job["shards"]:
            r = http.get(shard["url"])
            assert r.status_code == 200, r.text
            data = np.load(io.BytesIO(r.content))
            images = data["composite"]
            assert images.dtype == np.uint8 and images.shape[0] == shard["samples"] and images.shape[1] == 3
            assert images.std() > 0  # a real picture, not a blank
            keys += [int(k) for k in data["keys"]]
        assert sorted(keys) == list(range(10))
        assert "results" not in job  # the status shows no server path
        results = d.volume("results") / job["id"]  # CGN_RESULTS_DIR is the shared volume
        assert len([p for p in results.rglob("*") if p.is_file() and p.suffix == ".npz"]) == 3
        workers = http.get("/batches/workers").json()["workers"]
        assert [w["alive"] for w in workers] == [True] * len(WORKERS), workers

        # --- `docker compose run --rm api cgn models pull imagenet` (a mirror URL: no network here)
        pulled = d.run("api", ["cgn", "models", "pull", "imagenet", "--url", imagenet_mirror, "--trust-first-download"])
        assert pulled.returncode == 0, pulled.stderr.decode()
        assert (d.volume("models") / "imagenet-cgn" / "manifest.json").is_file()  # in the models volume

        # --- the running API picks it up without a restart: the same example now gives a picture
        r = http.post("/counterfactual", json=EXAMPLE)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/png" and r.content[:8] == PNG
        assert r.headers["x-cgn-model"] == "imagenet-cgn" and "imagenet-cgn" in r.headers["x-cgn-note"]
        labels = json.loads(r.headers["x-cgn-labels"])
        assert labels["shape"] == "ox" and "elephant" in labels["texture"] and labels["background"] == "moon", labels
    assert all(d.healthy(instance) for instance in ["api", *WORKERS])
