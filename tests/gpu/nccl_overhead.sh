#!/usr/bin/env bash
# tests/gpu/nccl_overhead.sh BUILD OUTDIR: the NCCL gradient path on one GPU (about 30 s), called by
# tests/gpu/check.sh (step 7); runnable alone on a GPU machine. Three parts, each with a time limit
# (RLC_NCCL_CHECK_TIMEOUT seconds, default 90):
#   1. bench_scaling --nccl-overhead on the default model (one 25 MiB bucket): step time and update-phase time
#      without communication, with the NCCL path forced on the single rank, and without again (drift);
#   2. the same on a larger model (512 x 8 layers, about 25 M parameters, 100 MB of gradients) with 4 MiB buckets,
#      so that about 25 buckets are all-reduced on the side stream while the backward runs;
#   3. `rlc train` (10 SFT steps, 2 GRPO steps) with device=cuda, plain and with RLC_FORCE_NCCL=1: a one-rank
#      all-reduce is the identity, so both metrics.jsonl must agree (test_ranks metrics, 1e-6 relative; bit for bit
#      when the kernels are deterministic) — the NCCL path changes nothing but the time.
# Prints every output; exit status non-zero if a part failed. Results go to OUTDIR/nccl_overhead.txt.
set -uo pipefail
build=${1:?usage: nccl_overhead.sh BUILD OUTDIR}
out=${2:?usage: nccl_overhead.sh BUILD OUTDIR}
tmo=${RLC_NCCL_CHECK_TIMEOUT:-90}
mkdir -p "$out"
log=$out/nccl_overhead.txt
: >"$log"
fail=0
say() { echo "$*" | tee -a "$log"; }
bench=$build/bench/bench_scaling

say "== 1. bench_scaling --nccl-overhead, default model"
timeout "$tmo" "$bench" --nccl-overhead --steps 5 --warmup 2 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] || { fail=1; say "FAILED (rc $rc)"; }

say "== 2. bench_scaling --nccl-overhead, 512 x 8 layers, RLC_NCCL_BUCKET_MB=4"
RLC_NCCL_BUCKET_MB=4 timeout "$tmo" "$bench" --nccl-overhead --steps 3 --warmup 1 --set model.dim=512 \
    --set model.n_layers=8 --set model.n_heads=8 --set model.n_kv_heads=4 --set model.head_dim=64 \
    --set model.hidden_dim=1536 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] || { fail=1; say "FAILED (rc $rc)"; }

say "== 3. rlc train on the GPU, plain vs RLC_FORCE_NCCL=1 (the metrics must agree)"
runs=$build/nccl_check_runs
rm -rf "$runs"
args=(train --set device=cuda --set sft.steps=10 --set rl.steps=2 --set task.eval_size=16 --set eval_every=0
      --set ckpt_every=0 --set out_dir="$runs" --quiet)
OMP_NUM_THREADS=1 timeout "$tmo" "$build/rlc" "${args[@]}" --set name=plain >"$runs.plain.log" 2>&1
prc=$?
RLC_FORCE_NCCL=1 OMP_NUM_THREADS=1 timeout "$tmo" "$build/rlc" "${args[@]}" --set name=nccl >"$runs.nccl.log" 2>&1
nrc=$?
sed 's/^/  [plain] /' "$runs.plain.log" | tail -3 | tee -a "$log"
sed 's/^/  [nccl]  /' "$runs.nccl.log" | tail -3 | tee -a "$log"
if [ $prc != 0 ] || [ $nrc != 0 ]; then
    fail=1
    say "FAILED: a run did not finish (plain rc $prc, nccl rc $nrc)"
elif "$build/tests/test_ranks" metrics "$runs/plain/metrics.jsonl" "$runs/nccl/metrics.jsonl" 1e-6 >>"$log" 2>&1; then
    if cmp -s <(grep -o '"loss":[^,]*' "$runs/plain/metrics.jsonl") <(grep -o '"loss":[^,]*' "$runs/nccl/metrics.jsonl"); then
        say "metrics agree; losses identical to the last digit"
    else
        say "metrics agree within 1e-6 (losses not bit for bit: non-deterministic kernels?)"
    fi
else
    fail=1
    say "FAILED: the metrics of the two runs differ (see above)"
fi
say "nccl_overhead: $([ $fail = 0 ] && echo ok || echo FAILED)"
exit $fail
