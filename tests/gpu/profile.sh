#!/usr/bin/env bash
# tests/gpu/profile.sh [OUTDIR]: performance probes for a lent GPU, after (or instead of) tests/gpu/check.sh.
# Builds the GPU programs like check.sh (same build dir), then:
#   1. bench_logprob_gpu over a grid of (tokens, vocabulary) chunk sizes: which chunk keeps the fp32 scratch in
#      L2 and how the fused forward compares with the LM-head GEMM at each;
#   2. Nsight Compute (ncu --clock-control none: the card's clocks are left alone) on the policy-loss kernels,
#      the attention kernels and the sampling kernel (both variants: a decode step's 512 rows of V = 151936,
#      greedy, temperature 1, top-k/top-p), with the speed-of-light, memory, occupancy, launch and warp-state
#      sections: ncu_loss.txt, ncu_attention.txt, ncu_sample.txt.
# Everything goes to OUTDIR (default $OUT, else out/gpu). Env: RLC_GPU_BUILD (default build-gpu),
# RLC_PROFILE_STEPS (which steps to run, default "sweep ncu").
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-${OUT:-$src/out/gpu}}
build=${RLC_GPU_BUILD:-$src/build-gpu}
steps=${RLC_PROFILE_STEPS:-sweep ncu}
mkdir -p "$out"
source "$src/tests/gpu/env.sh"
echo "$RLC_GPU_ENV_MSG"
if ! { cmake -S "$src" -B "$build" -DRLC_CUDA=ON -DRLC_WERROR=OFF -DCMAKE_BUILD_TYPE=Release >"$out/profile_build.log" 2>&1 &&
       cmake --build "$build" -j"$(nproc)" >>"$out/profile_build.log" 2>&1; }; then
    echo "profile: BUILD FAILED"; grep -E "error" "$out/profile_build.log" | head -20; exit 1
fi
g=$build/gpu
if [[ " $steps " == *" sweep "* ]]; then
    for tc in 1024 2048 4096; do
        for vc in 2048 4096 8192; do
            echo "== logprob chunks $tc x $vc" | tee -a "$out/logprob_sweep.txt"
            timeout 60 "$g/bench_logprob_gpu" --reps 3 --tchunk $tc --vchunk $vc 2>&1 | grep -E "^qwen|check" |
                tee -a "$out/logprob_sweep.txt"
        done
    done
fi
if [[ " $steps " == *" ncu "* ]] && command -v ncu >/dev/null; then
    secs="--section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats --section WarpStateStats --section ComputeWorkloadAnalysis"
    timeout 120 ncu --clock-control none $secs -k regex:ls_ -c 80 "$g/bench_loss_gpu" --reps 1 >"$out/ncu_loss.txt" 2>&1
    echo "ncu loss: rc $?"
    # the first three launches of each kernel are the correctness checks (small shapes); then the benchmark's
    for kern in att_fwd_kernel att_bwd_dkdv_kernel att_bwd_dq_kernel att_dec_kernel; do
        RLC_ATTN_NO_BASELINE=1 timeout 100 ncu --clock-control none $secs -k regex:"^$kern" --launch-skip 3 -c 2 \
            "$g/bench_attention_gpu" --quick --no-baseline >>"$out/ncu_attention.txt" 2>&1
        echo "ncu $kern: rc $?"
    done
    # test_sample's timings only, one repetition: per variant a warm-up and a timed call of each configuration
    RLC_SAMPLE_TIME_ONLY=1 timeout 120 ncu --clock-control none $secs -k regex:smp_kernel -c 12 \
        "$g/test_sample" >"$out/ncu_sample.txt" 2>&1
    echo "ncu sample: rc $?"
fi
echo "profile: done"
