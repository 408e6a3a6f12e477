#!/usr/bin/env bash
# Run ON the GPU machine (repository root), e.g. through the device tool:
#   run(command="bash profiles/gpu/run.sh", carry=[".whl", "data"], timeout_s=600)
# Installs the carried wheels without a registry, then `python -m repro.gpurun`: a CUDA
# self-test of every claim at smoke scale (stops here if one fails), the full record side by
# side on the one GPU within GPURUN_LIMIT seconds (default 480), packed into $OUT as
# record.tar.gz.part* (<= 15 MiB each) + gpurun.json. Extra arguments go to repro.gpurun.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -d .whl ]] && compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    export PATH="/tmp/site/bin:$PATH"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
exec python3 -m repro.gpurun --time-limit "${GPURUN_LIMIT:-480}" --out "${OUT:-gpurun-out}" "$@"
