#!/usr/bin/env bash
# The end-to-end demo on one machine, no GPU needed (README "The demo": what it prints, time):
#   generated sample (train / unlabeled / held-out parts) -> stage 1 pretrain (scratch B0, 150
#   steps) -> stage 2 pseudo-label -> stage 3 self-train on merged labels -> a threshold sweep
#   of the random init, stage 1 and stage 3 on the held-out part -> `directsam compare` (one
#   table + plot) -> `directsam predict` on a photo, in one local Ray cluster, all logged to
#   one sqlite MLflow store. Outputs go to demo_out/ (or $DEMO_OUT); extra arguments go to
#   `python -m directsam.demo` (see --help). Exits non-zero when any stage fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
OUT=${DEMO_OUT:-demo_out}
# A throwaway single-machine cluster bound to 127.0.0.1: no token auth (Ray 2.59+ turns it on
# by default for local clusters). Never set this for a shared or remote cluster.
export RAY_AUTH_MODE=disabled
export RAY_USAGE_STATS_ENABLED=0
export RAY_DATA_DISABLE_PROGRESS_BARS=1
# Nothing is downloaded: the models are random-init (scratch:b0) and the data is generated.
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export PYTHONUNBUFFERED=1
# The demo's MLflow store is given explicitly; ignore a tracking server set in the shell.
unset MLFLOW_TRACKING_URI RAY_ADDRESS
# A re-run starts clean, so checkpoints and MLflow runs are this run's only.
case "$OUT" in
  "" | "/" | "." | ".." | "$HOME") echo "demo.sh: refusing DEMO_OUT=$OUT" >&2; exit 2 ;;
esac
rm -rf "$OUT"
mkdir -p "$OUT"
exec .venv/bin/python -m directsam.demo --output "$OUT" --summary-json "$OUT/summary.json" "$@"
