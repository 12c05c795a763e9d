#!/usr/bin/env bash
# tests/gpu/check.sh [OUTDIR]: the GPU check, for a lent H100/H200 (within about 8 minutes). Prepare here
# with tests/gpu/fetch_debs.sh, then run on the device from the repository root:  bash tests/gpu/check.sh
# (carrying .debs). Steps:
#   1. unpack .debs/*.deb with dpkg -x into a private prefix; point pkg-config, CMake and the loader there
#   2. configure with RLC_CUDA=ON and build everything (CUDA library, GPU programs, the emulator tests)
#   3. run the known-answer kernels (tests/emu/kat_*.cu) under the emulator and on the GPU, dump both
#      outputs and compare them (mma, ldmatrix, shuffles, scans, atomics, ...): emulator vs hardware
#   4. run every GPU test and bench program in <build>/gpu/ (tests/gpu/test_*, bench/bench_*.cu), a few bench runs
#      with other settings (extra_runs), the torch baselines, then the emulator's own ctest label "emu"
#   5. one GRPO step of the trainer on the Qwen2.5-0.5B-like model in the default (mixed) precision
#      (bench/bench_step): a small smoke run (4 prompts x 4 samples x 64 new tokens after a warm-up step), then
#      the issue's configuration (64 x 8 x 512) unless the elapsed time plus its timeout would pass the budget:
#      phase times, tokens/s, MFU against the cuBLAS bf16 GEMM peak, decode against the copy bandwidth, peak
#      memory, decode steps replayed as CUDA graphs against the same steps run directly (decode_direct_ms: the
#      A/B of graphs in one process), then (--profile) the device time per op-table entry of the decode probe
#      and of one more step -> OUTDIR/bench_step{,_full}.txt and .json
#   6. the default training job for a fixed number of steps with device=cuda and with device=cpu, side by side
#      (tests/gpu/train_compare.sh): both success curves printed, checked to be close (about a minute)
#   7. the NCCL gradient path on this one GPU (tests/gpu/nccl_overhead.sh, about 30 s): bench_scaling
#      --nccl-overhead (no communication vs NCCL forced on one rank) on two model sizes, and `rlc train` plain vs
#      RLC_FORCE_NCCL=1 (metrics must agree)
#   8. write OUTDIR/gpu_report.md (default OUTDIR: $OUT, else out/gpu) plus gpu_check.log and both dumps
# Exit status non-zero if any step failed. Env: RLC_GPU_BUILD (build dir, default build-gpu),
# RLC_GPU_PROG_TIMEOUT (seconds per program, default 120), RLC_GPU_ARGS_<program> (its arguments; default
# --variants for bench_attention_gpu and bench_logprob_gpu, none for the others), RLC_GPU_EXTRA (0 skips the extra
# bench runs with other settings, listed at step 4), RLC_GPU_EMU_CTEST (0 skips
# step 4's emulator suite, which CI runs anyway, to save device time), RLC_GPU_BENCH_STEP (0 skips step 5), RLC_GPU_BENCH_STEP_ARGS and
# _TIMEOUT (the small run's size flags, default 90 s), RLC_GPU_BENCH_FULL (0 skips the full-size run),
# RLC_GPU_BENCH_FULL_ARGS and _TIMEOUT (default 240 s), RLC_GPU_BUDGET_S (the elapsed seconds the full run must fit
# in, default 480), RLC_GPU_TRAIN (0 skips step 6; its own knobs: train_compare.sh), RLC_GPU_NCCL (0 skips step 7).
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-${OUT:-$src/out/gpu}}
build=${RLC_GPU_BUILD:-$src/build-gpu}
ptimeout=${RLC_GPU_PROG_TIMEOUT:-120}
mkdir -p "$out"
report=$out/gpu_report.md
log=$out/gpu_check.log
: >"$log"
t_start=$(date +%s)
fail=0
say() { echo "$*" | tee -a "$log"; }
elapsed() { echo $(( $(date +%s) - t_start )); }

# ---- 1. private prefix from the carried .deb files (tests/gpu/env.sh)
source "$src/tests/gpu/env.sh"
say "$RLC_GPU_ENV_MSG"

gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
nvcc_v=$(nvcc --version 2>/dev/null | tail -1)
say "device: ${gpu:-no nvidia-smi}; nvcc: ${nvcc_v:-not found}"

# ---- 2. build
t0=$(date +%s)
if cmake -S "$src" -B "$build" -DRLC_CUDA=ON -DRLC_WERROR=OFF -DCMAKE_BUILD_TYPE=Release >>"$log" 2>&1 &&
   cmake --build "$build" -j"$(nproc)" >>"$log" 2>&1; then
    build_ok=1
else
    build_ok=0
    fail=1
    say "BUILD FAILED (see gpu_check.log)"
    grep -E "error|Error" "$log" | head -20
fi
t_build=$(( $(date +%s) - t0 ))
say "build: $([ $build_ok = 1 ] && echo ok || echo FAILED) in ${t_build} s"

# ---- 3. known answers: emulator vs GPU
kat_rows=""
kat_status="not run"
if [ $build_ok = 1 ]; then
    "$build/tests/emu/emu_kat" --dump "$out/kat_emu.txt" >>"$log" 2>&1 || { fail=1; say "emu_kat FAILED"; }
    if "$build/gpu/kat_gpu" --dump "$out/kat_gpu.txt" >"$out/kat_gpu.stdout" 2>&1; then gk=ok; else gk=FAILED; fail=1; fi
    cat "$out/kat_gpu.stdout" >>"$log"
    say "kat_gpu (known answers vs CPU, on the GPU): $gk"
    if "$build/gpu/kat_gpu" --compare "$out/kat_emu.txt" "$out/kat_gpu.txt" >"$out/kat_cmp.txt" 2>&1; then
        kat_status="emulator == GPU"
    else
        kat_status="MISMATCH between emulator and GPU"
        fail=1
    fi
    cat "$out/kat_cmp.txt" >>"$log"
    kat_rows=$(grep -E "match|MISMATCH|MISSING" "$out/kat_cmp.txt" | sed 's/^/| /; s/$/ |/')
    rm -f "$out/kat_gpu.stdout" "$out/kat_cmp.txt"
    say "known-answer comparison: $kat_status"
fi

# ---- 4. every GPU test and bench program, then the emulator suite
# Arguments per program: the attention and log-prob benches time every kernel variant (the attention backward
# candidates 1 and 2 and the log-prob variant 0 have not run on a GPU yet); RLC_GPU_ARGS_<program> overrides.
prog_args() {
    local v="RLC_GPU_ARGS_$1"
    if [ -n "${!v+x}" ]; then echo "${!v}"; return; fi
    case "$1" in
        bench_attention_gpu) echo "--variants" ;;
        bench_logprob_gpu) echo "--variants" ;;
    esac
}
# Extra runs of bench programs with other settings, for comparisons a first GPU run should make (RLC_GPU_EXTRA=0
# skips them): the loss token kernels' grid capped at about one wave of an H100/H200 (132 SMs x 4 blocks) instead
# of 1024 blocks (two waves, one step per warp at 1M tokens), and raised to 4096 blocks (the fused GSPO kernel's
# chunks then 2048 tokens at 8M tokens, so that its re-read of a chunk more likely hits L2), and the log-prob's
# default variant with a 1024-token chunk whose 32 MiB fp32 scratch stays in L2.
extra_runs=(
    "bench_loss_gpu --min-tokens 1048576 --check 0 --max-blocks 512"
    "bench_loss_gpu --min-tokens 1048576 --check 0 --max-blocks 256"
    "bench_loss_gpu --min-tokens 1048576 --check 0 --max-blocks 4096"
    "bench_logprob_gpu --variant 0 --tchunk 1024 --vchunk 8192"
)
prog_rows=""
# run_prog LABEL PROGRAM [ARGS...]: one program under the per-program timeout, its output into the log, a row in the
# report (prog_rows), fail=1 unless it exits 0
run_prog() {
    local label=$1 p=$2 t0 rc dt last status
    shift 2
    t0=$(date +%s%N)
    echo "---- $label" >>"$log"
    timeout "$ptimeout" "$p" "$@" >"$out/.prog.txt" 2>&1
    rc=$?
    cat "$out/.prog.txt" >>"$log"
    dt=$(( ($(date +%s%N) - t0) / 1000000 ))
    last=$(grep -v '^\s*$' "$out/.prog.txt" | tail -1 | cut -c1-120 | tr '|' '/')
    status=$([ $rc = 0 ] && echo ok || { [ $rc = 124 ] && echo TIMEOUT || echo "FAILED ($rc)"; })
    [ $rc = 0 ] || fail=1
    prog_rows+="| $label | $status | $dt | $last |"$'\n'
    say "$label: $status"
}
if [ $build_ok = 1 ] && [ -d "$build/gpu" ]; then
    for p in "$build"/gpu/test_* "$build"/gpu/bench_*; do
        [ -x "$p" ] || continue
        # shellcheck disable=SC2046
        run_prog "$(basename "$p")" "$p" $(prog_args "$(basename "$p")")
    done
    if [ "${RLC_GPU_EXTRA:-1}" != 0 ]; then
        for e in "${extra_runs[@]}"; do
            read -r -a argv <<<"$e"
            # about 10-20 s each; none once the budget is nearly spent (the later steps matter more)
            if [ $(( $(elapsed) + 30 )) -gt "${RLC_GPU_BUDGET_S:-480}" ]; then
                say "$e: skipped ($(elapsed) s used of the ${RLC_GPU_BUDGET_S:-480} s budget)"
                continue
            fi
            [ -x "$build/gpu/${argv[0]}" ] && run_prog "$e" "$build/gpu/${argv[0]}" "${argv[@]:1}"
        done
    fi
    # PyTorch baselines timed on the same card (bench/gpu/*_baseline.py; each skips itself without torch+CUDA)
    for py in "$src"/bench/gpu/*_baseline.py; do
        [ -f "$py" ] || continue
        name=$(basename "$py")
        echo "---- $name" >>"$log"
        timeout "$ptimeout" python3 "$py" >"$out/.prog.txt" 2>&1
        rc=$?
        cat "$out/.prog.txt" >>"$log"
        last=$(grep -v '^\s*$' "$out/.prog.txt" | tail -1 | cut -c1-120 | tr '|' '/')
        prog_rows+="| $name | $([ $rc = 0 ] && echo ok || echo "FAILED ($rc)") | | $last |"$'\n'
        say "$name: rc $rc"
    done
    rm -f "$out/.prog.txt"
fi
emu_ctest="not run"
if [ $build_ok = 1 ] && [ "${RLC_GPU_EMU_CTEST:-1}" != 0 ]; then
    if (cd "$build" && ctest -L emu --output-on-failure -j"$(nproc)" >>"$log" 2>&1); then emu_ctest=ok; else emu_ctest=FAILED; fail=1; fi
    say "ctest -L emu on the GPU machine: $emu_ctest"
fi

# ---- 5. one GRPO step of the trainer on the 0.5B-like model (bench/bench_step), in the default (mixed) precision:
# a small smoke run, then the issue's configuration (64 prompts x 8 samples x 512 new tokens) when the budget allows
bench_status="not run"
bench_full_status="not run"
if [ $build_ok = 1 ] && [ "${RLC_GPU_BENCH_STEP:-1}" != 0 ] && [ -x "$build/bench/bench_step" ]; then
    bt=${RLC_GPU_BENCH_STEP_TIMEOUT:-90}
    bargs=${RLC_GPU_BENCH_STEP_ARGS:---prompts 4 --samples 4 --new-tokens 64 --steps 1 --warmup 1 --profile}
    bft=${RLC_GPU_BENCH_FULL_TIMEOUT:-240}
    bfargs=${RLC_GPU_BENCH_FULL_ARGS:---prompts 64 --samples 8 --new-tokens 512 --steps 1 --warmup 1 --profile}
    # run_bench NAME TIMEOUT ARGS: bench_step into OUTDIR/NAME.txt and .json; its status in rb_status (not a
    # command substitution: fail must be set in this shell)
    run_bench() {
        local t0=$(date +%s) rc
        echo "---- bench_step --device cuda $3" >>"$log"
        # shellcheck disable=SC2086
        timeout "$2" "$build/bench/bench_step" --device cuda $3 >"$out/$1.txt" 2>&1
        rc=$?
        cat "$out/$1.txt" >>"$log"
        grep '^{"bench":"bench_step"' "$out/$1.txt" >"$out/$1.json"
        [ $rc = 0 ] || fail=1
        rb_status="$([ $rc = 0 ] && echo ok || { [ $rc = 124 ] && echo TIMEOUT || echo "FAILED ($rc)"; }) in $(( $(date +%s) - t0 )) s ($3)"
    }
    run_bench bench_step "$bt" "$bargs"
    bench_status=$rb_status
    say "bench_step (GRPO step, 0.5B-like, small): $bench_status"
    if [ "${RLC_GPU_BENCH_FULL:-1}" = 0 ]; then
        bench_full_status="skipped (RLC_GPU_BENCH_FULL=0)"
    elif [ $(( $(elapsed) + bft )) -gt "${RLC_GPU_BUDGET_S:-480}" ]; then
        bench_full_status="skipped: $(elapsed) s used, its timeout of $bft s would pass the ${RLC_GPU_BUDGET_S:-480} s budget"
    else
        run_bench bench_step_full "$bft" "$bfargs"
        bench_full_status=$rb_status
    fi
    say "bench_step (GRPO step, 0.5B-like, 64 x 8 x 512): $bench_full_status"
fi

# run_script WHAT OUTFILE PATTERN SCRIPT [ARGS...]: bash SCRIPT ARGS into OUTFILE (and the log), its lines matching
# PATTERN on the console; its status (ok / FAILED) in rs_status, fail=1 unless it exits 0
run_script() {
    local what=$1 outfile=$2 pattern=$3 script=$4 t0
    shift 4
    t0=$(date +%s)
    echo "---- $(basename "$script")" >>"$log"
    if bash "$script" "$@" >"$outfile" 2>&1; then rs_status=ok; else rs_status=FAILED; fail=1; fi
    cat "$outfile" >>"$log"
    grep -E "$pattern" "$outfile"
    say "$what: $rs_status in $(( $(date +%s) - t0 )) s"
}

# ---- 6. training on the GPU against the CPU backend
train_status="not run"
if [ $build_ok = 1 ] && [ "${RLC_GPU_TRAIN:-1}" != 0 ]; then
    run_script "training, GPU vs CPU" "$out/train_compare.txt" "^train_compare:|^  (ok|FAIL) " \
        "$src/tests/gpu/train_compare.sh" "$build/rlc" "$out"
    train_status=$rs_status
fi

# ---- 7. the NCCL gradient path on one GPU
nccl_status="not run"
if [ $build_ok = 1 ] && [ "${RLC_GPU_NCCL:-1}" != 0 ]; then
    run_script "NCCL path on one GPU" "$out/.nccl.txt" "^overhead of the NCCL path|^  NCCL:|^metrics agree|FAILED" \
        "$src/tests/gpu/nccl_overhead.sh" "$build" "$out"
    nccl_status=$rs_status
    rm -f "$out/.nccl.txt"
fi

# ---- 8. report
{
    echo "# GPU check ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo
    echo "- device: ${gpu:-unknown}"
    echo "- nvcc: ${nvcc_v:-unknown}"
    echo "- commit: $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$src" diff --quiet 2>/dev/null || echo ' (with local changes)')"
    echo "- build: $([ $build_ok = 1 ] && echo ok || echo FAILED) in ${t_build} s"
    echo "- known-answer kernels, emulator vs GPU: **$kat_status**"
    lt_msgs=$(grep -h "^rlc_blas:" "$log" | sort -u | head -3 | tr '\n' ' ')
    echo "- cuBLASLt bf16 GEMMs (self-checked against cublasGemmEx): ${lt_msgs:-in use, no fallback message}"
    echo "- ctest -L emu on this machine: $emu_ctest"
    echo "- GRPO step bench, 0.5B-like model, small (bench_step.txt, .json): **$bench_status**"
    echo "- GRPO step bench, 0.5B-like model, 64 x 8 x 512 (bench_step_full.txt, .json): **$bench_full_status**"
    echo "- default training job, device=cuda vs device=cpu (train_compare.txt): **$train_status**"
    echo "- NCCL gradient path on one GPU (nccl_overhead.txt): **$nccl_status**"
    echo "- total: $(elapsed) s; overall: **$([ $fail = 0 ] && echo PASS || echo FAIL)**"
    echo
    echo "## Known answers (tests/emu/kat_*.cu): emulator dump vs GPU dump"
    echo
    echo "| output | type / size / result |"
    echo "| --- | --- |"
    printf '%s\n' "$kat_rows" | sed -E 's/^\| ([^ ]+) +(.*) \|$/| \1 | \2 |/'
    echo
    echo "## GPU test and bench programs (<build>/gpu)"
    echo
    echo "| program | status | ms | last line of output |"
    echo "| --- | --- | --- | --- |"
    printf '%s' "${prog_rows:-| (none) | | | |\n}"
    echo
    if [ -f "$out/train_compare.txt" ]; then
        echo "## Training: the default job on the GPU and on the CPU backend (tests/gpu/train_compare.sh)"
        echo
        echo '```'
        cat "$out/train_compare.txt"
        echo '```'
        echo
    fi
    if [ -f "$out/nccl_overhead.txt" ]; then
        echo "## The NCCL gradient path on one GPU (tests/gpu/nccl_overhead.sh)"
        echo
        echo '```'
        cat "$out/nccl_overhead.txt"
        echo '```'
        echo
    fi
    echo "Full log: gpu_check.log. Dumps: kat_emu.txt, kat_gpu.txt. Training metrics: train_cuda_metrics.jsonl, train_cpu_metrics.jsonl."
    if [ -s "$out/bench_step.txt" ]; then
        echo "## One GRPO step of the trainer, Qwen2.5-0.5B-like model (bench/bench_step)"
        echo
        echo '```'
        grep -v '^{"bench"' "$out/bench_step.txt"
        echo '```'
        echo
    fi
    echo "Full log: gpu_check.log. Dumps: kat_emu.txt, kat_gpu.txt. Training metrics: train_cuda_metrics.jsonl, train_cpu_metrics.jsonl. GRPO step bench: bench_step.txt / .json (small), bench_step_full.txt / .json (64 x 8 x 512)."
} >"$report"
say "report: $report ($(elapsed) s)"
exit $fail
