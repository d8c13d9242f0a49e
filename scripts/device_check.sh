#!/usr/bin/env bash
# The GPU run, in one command (docs/benchmarks.md, "GPU"): bytes and speed checks, the ImageNet CGN
# against the official loop, and the service on CUDA. Writes logs and JSON under $OUT (default var/device).
#
# The GPU machine has torch but not the service's web packages: download them here as Python 3.12
# wheels into .whl/ first; they are installed to /tmp/site:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     pytorch-pretrained-biggan==0.1.1 boto3 botocore s3transfer jmespath fastapi==0.165.0 starlette==1.10.0 \
#     pydantic==2.13.4 pydantic-core==2.46.4 pydantic-settings==2.14.1 python-dotenv==1.2.2 annotated-types==0.7.0 \
#     typing-inspection==0.4.2 uvicorn==0.54.0 redis==8.1.0 python-multipart==0.0.34 annotated-doc==0.0.7 \
#     opentelemetry-api==1.45.2 importlib-metadata
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-var/device}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD:$PWD/client
else
    export PYTHONPATH=$PWD:$PWD/client
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"

timeout "${CHECK_S:-240}" python3 benchmarks/gpu_check.py --json "$OUT/gpu_check.json" 2>&1 | tee "$OUT/gpu_check.log"
timeout "${SPEED_S:-150}" python3 benchmarks/imagenet_speed.py --channels-last --baseline-images 30 --repeats 3 \
    --json "$OUT/imagenet_speed.json" 2>&1 | tee "$OUT/imagenet_speed.log"
timeout "${SERVICE_S:-100}" python3 benchmarks/service_bench.py --device cuda --seconds 5 --batch 256 --max-batches 100 \
    --server-log "$OUT/server.log" 2>&1 | tee "$OUT/service_bench.log"
