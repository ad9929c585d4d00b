#!/usr/bin/env bash
# The GPU check (issue 16): install, run the tests marked `gpu`, benchmark in fp32 and bf16.
#
#   bash benchmarks/gpu_check.sh                  # on a machine with one NVIDIA GPU (< 8 minutes)
#   bash benchmarks/gpu_check.sh --batch 32       # a smaller ViT-B/16 batch (default 64)
#   bash benchmarks/gpu_check.sh --skip-install   # reuse .venv (a machine without a network)
#   bash benchmarks/gpu_check.sh --dry-run        # the benchmark's code path on CPU, tiny models
#
# Steps: (1) `bash scripts/install.sh --dev` (creates or updates $VENV, default .venv; safe to
# rerun); (2) `pytest -m gpu`; (3) benchmarks/gpu_bench.py: MAE, MetaMAE 2nd / 1st order and one
# MLO-MAE cycle at the dabs backbone and at ViT-B/16 on 224x224, fp32 and bf16: s/step,
# samples/s, peak GPU memory, MFU; a table on stdout, JSON at benchmarks/results/gpu_check.json
# (--out). Flags other than the ones below go to gpu_bench.py (its --help lists them) and are
# checked before anything is installed. A failing gpu test does not stop the benchmark (one GPU
# session should bring back both); the exit status is non-zero if either failed.
# --dry-run skips (1) and (2) and runs gpu_bench.py --dry-run with $PYTHON (default:
# $VENV/bin/python): CPU, the tiny backbone, 1 warm-up + 1 timed step, in seconds.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bash benchmarks/gpu_check.sh [--dry-run] [--skip-install] [--skip-tests] [gpu_bench.py flags]

  --dry-run        CPU, tiny models, 1 warm-up + 1 timed step; no install, no gpu tests
  --skip-install   use the existing $VENV (default .venv) instead of scripts/install.sh --dev
  --skip-tests     do not run the tests marked gpu
  -h, --help       this text

gpu_bench.py flags (python benchmarks/gpu_bench.py --help): --batch N (ViT-B/16 batch, 64),
--dabs-batch N, --steps N (10), --warmup N (3), --precisions fp32 bf16, --variants ...,
--groups dabs vit-b16, --peak-tflops X, --out PATH (benchmarks/results/gpu_check.json)
EOF
}

DRY=0
INSTALL=1
TESTS=1
PASS=()
for arg in "$@"; do
  case "$arg" in
    -h|--help) usage; exit 0 ;;
    --dry-run) DRY=1; PASS+=("$arg") ;;
    --skip-install) INSTALL=0 ;;
    --skip-tests) TESTS=0 ;;
    *) PASS+=("$arg") ;;
  esac
done

cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
export VENV
# a bad flag is refused here, before minutes of installing (gpu_bench.py needs only the
# standard library to parse its flags)
python3 benchmarks/gpu_bench.py --check-args ${PASS[@]+"${PASS[@]}"}

if [ "$DRY" = 1 ]; then
  PY="${PYTHON:-$VENV/bin/python}"
  if [ ! -x "$PY" ] && ! command -v "$PY" >/dev/null; then
    echo "gpu_check.sh: no Python at '$PY' (run 'bash scripts/install.sh --dev' or set PYTHON)" >&2
    exit 2
  fi
  exec "$PY" benchmarks/gpu_bench.py ${PASS[@]+"${PASS[@]}"}
fi

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check.sh: no NVIDIA GPU found (nvidia-smi); on a CPU use --dry-run" >&2
  exit 2
fi

START=$SECONDS
phase() { echo; echo "== $1 ($((SECONDS - START)) s in)"; }
nvidia-smi -L

if [ "$INSTALL" = 1 ]; then
  phase "install: bash scripts/install.sh --dev"
  bash scripts/install.sh --dev
elif [ ! -x "$VENV/bin/python" ]; then
  echo "gpu_check.sh: --skip-install but no $VENV/bin/python" >&2
  exit 2
fi
PY="$VENV/bin/python"
"$PY" -c 'import torch, sys; print("torch", torch.__version__, "CUDA", torch.version.cuda,
"device:", torch.cuda.get_device_name() if torch.cuda.is_available() else None)
sys.exit(0 if torch.cuda.is_available() else 3)' || {
  echo "gpu_check.sh: the GPU is there but torch in $VENV sees no CUDA device (a CPU-only torch?)" >&2
  exit 2
}

TESTS_RC=0
if [ "$TESTS" = 1 ]; then
  phase "tests marked gpu: pytest -q -m gpu"
  "$PY" -m pytest -q -p no:cacheprovider -m gpu -rs || TESTS_RC=$?
fi

phase "benchmark: benchmarks/gpu_bench.py ${PASS[*]:-}"
BENCH_RC=0
"$PY" benchmarks/gpu_bench.py ${PASS[@]+"${PASS[@]}"} || BENCH_RC=$?

echo
echo "== done in $((SECONDS - START)) s: gpu tests $([ "$TESTS" = 1 ] && echo "exit $TESTS_RC" || echo skipped), benchmark exit $BENCH_RC"
if [ $((SECONDS - START)) -gt 480 ]; then
  echo "gpu_check.sh: took more than 8 minutes (the issue's budget): report it" >&2
fi
[ "$TESTS_RC" = 0 ] && [ "$BENCH_RC" = 0 ]
