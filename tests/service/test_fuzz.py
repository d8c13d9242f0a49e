"""schemathesis --checks all over /openapi.json of a real `cgn serve` with an API key and a real Redis:
no server error, no status code, content type, header or body the document does not describe."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from servers import ServerProcess

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_schemathesis_finds_nothing(redis_server, random_store: Path, tmp_path: Path):
    env = {
        "CGN_MODEL_STORE": str(random_store),
        "CGN_DEFAULT_MODEL": "mnist-test",
        "CGN_ASSETS_DIR": str(tmp_path / "assets"),
        "CGN_RESULTS_DIR": str(tmp_path / "results"),
        "CGN_REDIS_URL": redis_server.url,
        "CGN_API_KEYS": "fuzz-key",
        "CGN_MAX_SAMPLES": "64",
        "CGN_BATCH_MAX_N": "200",
        "CGN_MAX_BODY_BYTES": str(256 * 1024),
        "CGN_THREADS": "1",
    }
    server = ServerProcess(env, tmp_path / "server.log").start()
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    try:
        run = subprocess.run(
            [
                cli,
                "--config-file",
                str(CONFIG),
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                "all",
                "-H",
                "Authorization: Bearer fuzz-key",
                "--max-examples",
                "15",
                "--seed",
                "1",
                "--workers",
                "2",
                "--no-color",
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
    finally:
        server.stop()
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-2000:]
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert tested and int(tested.group(1)) >= 18, run.stdout[-3000:]  # every operation, batches included
