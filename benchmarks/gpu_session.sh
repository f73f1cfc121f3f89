#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md in one prepared run (about 7 minutes) on a lent
# H100/H200, which has PyTorch and transformers but no network and none of the packages
# below.  Here, first (network to the package registries needed):
#     bash benchmarks/gpu_wheels.sh            # -> .whl/ (git-ignored, ~14 MB)
# then, through the device tool, with carry [".whl"]:
#     bash benchmarks/gpu_session.sh
# Everything printed is also written to $OUT/gpu_session.log ($OUT: the device tool's
# folder that comes back; results/gpu_session when unset).  Each step has its own time
# limit and a failed step does not stop the next.  SMOKE=1 runs every step at toy sizes
# on the CPU, to check the script itself here.
set -u
OUT=${OUT:-results/gpu_session}
mkdir -p "$OUT"
LOG="$OUT/gpu_session.log"
: >"$LOG"

if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl &&
        export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1

step() {
    local limit=$1
    shift
    echo "=== $(date -u +%H:%M:%S) $* (limit ${limit} s)" | tee -a "$LOG"
    timeout "$limit" "$@" 2>&1 | tee -a "$LOG"
    echo "=== exit ${PIPESTATUS[0]}" | tee -a "$LOG"
}

step 60 bash -c 'nvidia-smi -L; python3 --version; python3 -c "
import torch, transformers, numpy
print(\"torch\", torch.__version__, \"cuda\", torch.cuda.is_available(), \"transformers\", transformers.__version__, \"numpy\", numpy.__version__)
import wtal_training.training, prior_generation.generate, evaluation.detection, decord
print(\"project packages import\")"'

if [ "${SMOKE:-0}" = 1 ]; then
    small=(--scale 0.05 --feature-dim 64 --device cpu)
    step 120 python3 benchmarks/bench_training.py --method delu --iterations 5 "${small[@]}"
    step 120 python3 benchmarks/bench_training.py --method ddgnet --iterations 5 "${small[@]}"
    step 120 python3 benchmarks/bench_mllm4wtal_cost.py --feature-dim 64 --batch-size 6 --length 32 --repeats 2 --warmup 1
    step 200 python3 benchmarks/bench_prior_generation.py --shape tiny --batch-sizes 2 --videos 2
    exit 0
fi

# Issue 5: a THUMOS14-shaped DELU step (>= 120 it/s), 212-video evaluation (< 2 s).
step 100 python3 benchmarks/bench_training.py --method delu --iterations 500
# DDG-Net: inference memory with videos up to 5,000 snippets (the pair-bounded chunks).
step 70 python3 benchmarks/bench_training.py --method ddgnet --iterations 100
# Issue 6: base + KSM + CSR + head < 2x the base per iteration; inference within 5 %.
step 80 python3 benchmarks/bench_mllm4wtal_cost.py --batch-size 10 --length 320 --repeats 20 --warmup 3
# Issue 3: >= 4 videos/s at the 7B shape (random weights, bf16), decoding included.
step 200 python3 benchmarks/bench_prior_generation.py --shape 7b --arch qwen2_vl --batch-sizes 8,32 \
    --videos 32 --num-frames 16
