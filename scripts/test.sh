#!/usr/bin/env bash
# The test suite: installs the project into .venv (first run ~3 min) and runs pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/metrics -k recall`.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh || exit 1
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}
export RAY_DATA_DISABLE_PROGRESS_BARS=1
export RAY_USAGE_STATS_ENABLED=0
export HF_HUB_OFFLINE=1
export PYTHONHASHSEED=0
.venv/bin/python -m pytest --durations=25 "$@"
rc=$?
# pytest exits 5 when no test was collected (e.g. a -k filter that matches nothing): not a failure.
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests"
  exit 0
fi
exit "$rc"
