#!/usr/bin/env bash
# Create bench/.venv-baseline with the naive baseline's pinned dependencies (bench/baseline/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python3}
[ -x .venv-baseline/bin/python ] || "$python" -m venv .venv-baseline
.venv-baseline/bin/python -m pip install -q -r baseline/requirements.txt
echo "bench/.venv-baseline ready: $(.venv-baseline/bin/python -c 'import broadcaster, redis, starlette, uvicorn; print("broadcaster", broadcaster.__version__ if hasattr(broadcaster, "__version__") else "0.3.1", "redis", redis.__version__, "starlette", starlette.__version__, "uvicorn", uvicorn.__version__)')"
