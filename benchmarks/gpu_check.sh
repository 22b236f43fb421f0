#!/usr/bin/env bash
# One prepared run of every GPU check and GPU benchmark, writing all output into one folder; a few minutes on a
# current GPU. It installs nothing: run it in an environment where semst's requirements (and pytest) are
# installed, from anywhere (it changes to the repository root).
#
#   benchmarks/gpu_check.sh [OUT_DIR]                      # default OUT_DIR: gpu-check-YYYYmmdd-HHMMSS
#   SEMST_CUT_CHECKOUT=/tmp/cut benchmarks/gpu_check.sh    # also CUT's own step (git clone
#                                                          # https://github.com/taesungp/contrastive-unpaired-translation /tmp/cut)
#   PYTHON=/path/to/venv/bin/python benchmarks/gpu_check.sh
#   GPU_CHECK_DRY_RUN=1 benchmarks/gpu_check.sh /tmp/x      # print the commands only (no GPU needed)
#
# What it runs, each part with a time limit; a part that fails or runs out of time is recorded in
# OUT_DIR/status.txt and the rest still runs:
#   environment.txt          nvidia-smi, torch/CUDA/cuDNN versions, the CPU
#   pytest_gpu.txt           pytest -m gpu (CUDA training and resume in fp32/bf16/fp16, translation CUDA vs CPU)
#   train_step_*.txt         benchmarks/train_step.py: cut, semst, semst-ms at 256 px, fp32 and bf16
#   cut_*.txt/.json          benchmarks/cut_comparison.py (only with SEMST_CUT_CHECKOUT): CUT's code against semst's
#                            presets at fp32, bf16, channels_last and torch.compile
#   translate_*.txt/.json    benchmarks/translate_fullres.py at 2048x1024: multi-scale with 1 and 8 tiles a batch,
#                            fp32 and bf16; single-scale whole image
#   input_pipeline.txt/.json benchmarks/input_pipeline.py: decode + crop per data-loader worker on this machine's CPU
#                            (0 and 4 workers; the number needed for 10 steps/s)
#   summary.md               the figures of every part, gathered
set -u -o pipefail

cd "$(dirname "$0")/.."
OUT=${1:-gpu-check-$(date +%Y%m%d-%H%M%S)}
PYTHON=${PYTHON:-python}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
: > "$OUT/status.txt"

DRY_RUN=${GPU_CHECK_DRY_RUN:-}
if [ -z "$DRY_RUN" ] && ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA device visible to $PYTHON (torch.cuda.is_available() is False); nothing was run" >&2
    exit 1
fi

# run NAME SECONDS COMMAND...: output to OUT/NAME.txt, exit status to OUT/status.txt.
run() {
    local name=$1 limit=$2
    shift 2
    echo "== $name (at most ${limit} s): $*"
    if [ -n "$DRY_RUN" ]; then
        echo "$name: not run (dry run)" >> "$OUT/status.txt"
        return
    fi
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.txt" 2>&1
    local code=$?
    local verdict="ok"
    if [ "$code" -eq 124 ] || [ "$code" -eq 137 ]; then verdict="TIMED OUT"; elif [ "$code" -ne 0 ]; then verdict="FAILED"; fi
    echo "$name: $verdict (exit $code, $((SECONDS - start)) s)" | tee -a "$OUT/status.txt"
}

[ -n "$DRY_RUN" ] || {
    nvidia-smi || true
    "$PYTHON" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'cuDNN', torch.backends.cudnn.version()); print(torch.cuda.get_device_name(0), torch.cuda.get_device_properties(0))"
    lscpu 2>/dev/null | head -20 || true
    git log -1 --oneline 2>/dev/null || true
} > "$OUT/environment.txt" 2>&1

run pytest_gpu 300 "$PYTHON" -m pytest -m gpu -q -p no:cacheprovider tests

for precision in fp32 bf16; do
    run "train_step_$precision" 180 "$PYTHON" benchmarks/train_step.py --device cuda --presets cut,semst,semst-ms \
        --size 256 --steps 10 --warmup 3 --precision "$precision"
done

if [ -n "${SEMST_CUT_CHECKOUT:-}" ]; then
    compare() {
        local name=$1 limit=$2
        shift 2
        run "cut_$name" "$limit" "$PYTHON" benchmarks/cut_comparison.py "$SEMST_CUT_CHECKOUT" --device cuda \
            --json "$OUT/cut_$name.json" "$@"
    }
    compare fp32 180 --steps 10 --warmup 3
    compare bf16 180 --steps 10 --warmup 3 --precision bf16
    compare bf16_channels_last 180 --steps 10 --warmup 3 --precision bf16 --channels-last
    # Compiling costs minutes: one semst preset, fewer steps (the first steps compile; warm-up covers them).
    compare bf16_compile 420 --steps 5 --warmup 3 --precision bf16 --compile --variants cut-code,semst
else
    echo "cut_comparison: skipped (SEMST_CUT_CHECKOUT is not set)" | tee -a "$OUT/status.txt"
fi

translate() {
    local name=$1
    shift
    run "translate_$name" 240 "$PYTHON" benchmarks/translate_fullres.py --device cuda --sizes 2048x1024 --repeats 3 \
        --json "$OUT/translate_$name.json" "$@"
}
translate multiscale_fp32_batch1 --modes multiscale,single-whole
translate multiscale_fp32_batch8 --modes multiscale --tile-batch 8
translate multiscale_bf16_batch8 --modes multiscale --tile-batch 8 --precision bf16

run input_pipeline 240 "$PYTHON" benchmarks/input_pipeline.py --images 8 --passes 1 --workers 0,4 \
    --steps-per-second 10 --json "$OUT/input_pipeline.json"

{
    echo "# GPU check $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo '```'
    grep -m1 -E "NVIDIA|H100|H200|A100|RTX|Tesla" "$OUT/environment.txt" 2>/dev/null || true
    grep -m1 "^torch " "$OUT/environment.txt" 2>/dev/null || true
    cat "$OUT/status.txt"
    echo '```'
    for file in "$OUT"/pytest_gpu.txt "$OUT"/train_step_*.txt "$OUT"/cut_*.txt "$OUT"/translate_*.txt "$OUT"/input_pipeline.txt; do
        [ -f "$file" ] || continue
        echo
        echo "## $(basename "$file" .txt)"
        echo
        echo '```'
        grep -v -E "^(W[0-9]{4}|  warnings.warn|.*UserWarning)" "$file" | tail -n 25
        echo '```'
    done
} > "$OUT/summary.md"

echo "all output in $OUT (summary: $OUT/summary.md)"
! grep -q -E "FAILED|TIMED OUT" "$OUT/status.txt"
