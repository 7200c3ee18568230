#!/usr/bin/env bash
# The GPU suite (benchmarks/gpu_suite.py) in one call, with the packages a bare GPU node lacks.
#
#   bash benchmarks/gpu_suite.sh prepare        # here (a machine with pip and the registry):
#                                               # Python 3.12 x86-64 wheels into .whl/ (ignored)
#   bash benchmarks/gpu_suite.sh run [ARGS...]  # on the GPU node: install .whl/ into /tmp/site
#                                               # when present, then gpu_suite.py ARGS
#
# The workplace's H200 image has torch, transformers, opencv, pyarrow, pandas, scikit-image but
# no Ray, pycocotools, jsonschema, tensorboardX or pydantic, and no registry. Ray's wheel (~76 MiB)
# exceeds what a call may carry (64 MiB with the tree), so `prepare` repacks it without the Java
# jars and RLlib (unused here) as .whl/ray-<version>-slim.tar.gz, unpacked as is on the node.
# Versions follow this checkout's .venv (the ones the tests pass with).
# For the GPU JPEG decode items, `prepare` also repacks nvidia-nvimgcodec-cu12 (Python 3.12
# module, core library, nvJPEG and libjpeg-turbo extensions only; ~32 MB -> ~7 MB) with
# nvidia-nvjpeg-cu12's libnvjpeg as .whl/gpu-decode-slim.tar.gz (NVIMGCODEC=0 skips it); `run`
# unpacks it where nvidia.nvimgcodec does not import and puts libnvjpeg on LD_LIBRARY_PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

cmd=${1:-}
shift || true
case "$cmd" in
prepare)
  py=${PYTHON:-.venv/bin/python}
  ver() { "$py" -c "import importlib.metadata as m; print(m.version('$1'))"; }
  mkdir -p .whl
  rm -f .whl/*.whl .whl/*.tar.gz
  pkgs=()
  for name in pycocotools jsonschema jsonschema-specifications referencing rpds-py tensorboardX \
    pydantic pydantic-core annotated-types typing-inspection typing-extensions; do
    pkgs+=("$name==$(ver "$name")")
  done
  ray_version=$(ver ray)
  plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
  dl=(python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12
    --implementation cp "${plat[@]}")
  "${dl[@]}" -d .whl "${pkgs[@]}"
  tmp=$(mktemp -d)
  "${dl[@]}" -d "$tmp" "ray==$ray_version"
  mkdir "$tmp/x"
  python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" \
    "$tmp"/ray-*.whl "$tmp/x"
  # zipfile drops the executable bits that gcs_server / raylet need: restore them from the zip.
  python3 - "$tmp"/ray-*.whl "$tmp/x" <<'EOF'
import os, sys, zipfile
for info in zipfile.ZipFile(sys.argv[1]).infolist():
    mode = info.external_attr >> 16
    if mode & 0o111:
        os.chmod(os.path.join(sys.argv[2], info.filename), mode & 0o777)
EOF
  rm -rf "$tmp/x/ray/jars" "$tmp/x/ray/rllib"
  tar -C "$tmp/x" -czf ".whl/ray-$ray_version-slim.tar.gz" .
  rm -rf "$tmp"
  if [ "${NVIMGCODEC:-1}" != 0 ]; then
    tmp=$(mktemp -d)
    "${dl[@]}" -d "$tmp" "nvidia-nvimgcodec-cu12==${NVIMGCODEC_VERSION:-0.9.0.20}" \
      "nvidia-nvjpeg-cu12==${NVJPEG_VERSION:-12.4.0.76}"
    mkdir "$tmp/x"
    for w in "$tmp"/*.whl; do
      python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$w" "$tmp/x"
    done
    # nvidia/ must not hide the node's own nvidia.* packages (torch's CUDA libraries): a
    # pkgutil-style __init__ puts every nvidia/ folder on sys.path into the package. Only the
    # Python 3.12 module and the JPEG extensions are kept.
    echo '__path__ = __import__("pkgutil").extend_path(__path__, __name__)' \
      > "$tmp/x/nvidia/__init__.py"
    find "$tmp/x/nvidia/nvimgcodec" -name 'nvimgcodec_impl.cpython-*.so' ! -name '*-312-*' -delete
    rm -rf "$tmp/x/nvidia/nvimgcodec/tools" "$tmp/x/nvidia/nvjpeg/include"
    find "$tmp/x/nvidia/nvimgcodec/extensions" -name '*.so*' ! -name 'libnvjpeg_ext*' \
      ! -name 'libjpeg_turbo_ext*' -delete
    tar -C "$tmp/x" -czf .whl/gpu-decode-slim.tar.gz .
    rm -rf "$tmp"
  fi
  du -ch .whl/* | tail -1
  ;;
run)
  py=${PYTHON:-python3}
  [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && py=.venv/bin/python
  # Only where Ray is missing (the bare GPU node): the carried wheels are for Python 3.12.
  if ! "$py" -c "import ray, pycocotools" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl
    for t in .whl/ray-*-slim.tar.gz; do [ -e "$t" ] && tar -C /tmp/site -xzf "$t"; done
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  if [ -e .whl/gpu-decode-slim.tar.gz ] && ! "$py" -c "import nvidia.nvimgcodec" 2>/dev/null; then
    mkdir -p /tmp/site-gpu-decode
    tar -C /tmp/site-gpu-decode -xzf .whl/gpu-decode-slim.tar.gz
    export PYTHONPATH=/tmp/site-gpu-decode${PYTHONPATH:+:$PYTHONPATH}
    export LD_LIBRARY_PATH=/tmp/site-gpu-decode/nvidia/nvjpeg/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  fi
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
  exec "$py" benchmarks/gpu_suite.py "$@"
  ;;
*)
  echo "usage: $0 prepare | run [gpu_suite.py args]" >&2
  exit 2
  ;;
esac
