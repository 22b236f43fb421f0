#!/usr/bin/env bash
# How many multi-scale training steps a second one GPU gives to N training processes at once, with NVIDIA's
# MPS and without (docs/benchmarks.md, GPU). Under a minute on an H200; run as a user that may start MPS.
#
#   benchmarks/gpu_concurrency.sh [OUT_DIR]      # default OUT_DIR: gpu-concurrency; PYTHON=... to choose python
set -u
cd "$(dirname "$0")/.."
OUT=${1:-gpu-concurrency}
PYTHON=${PYTHON:-python}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
run_n() {  # run_n N TAG: N copies of the `small`-scale semst-ms step timing at once
    local n=$1 tag=$2 t=$SECONDS
    for i in $(seq "$n"); do
        timeout 120 "$PYTHON" benchmarks/train_step.py --device cuda --presets semst-ms --size 128 \
            --base-channels 32 --steps 30 --warmup 5 --threads 1 >"$OUT/${tag}_$i.txt" 2>&1 &
    done
    wait
    echo "$tag: $n processes at once, $((SECONDS - t)) s" | tee -a "$OUT/summary.txt"
    grep -h "semst-ms " "$OUT/${tag}"_*.txt | sed "s/^/  /" | tee -a "$OUT/summary.txt"
}
run_n 1 single
export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
if nvidia-cuda-mps-control -d; then
    run_n 15 mps15
    run_n 5 mps5
    echo quit | nvidia-cuda-mps-control
    sleep 2
else
    echo "MPS could not be started: only the runs without it" | tee -a "$OUT/summary.txt"
fi
unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
run_n 15 nomps15
