#!/usr/bin/env bash
# tests/gpu/train_compare.sh RLC OUTDIR: the default training job (configs/default.json: SFT warm start, then GRPO
# on addition) for a fixed number of steps on the GPU (device=cuda) and on the CPU backend (device=cpu), the two
# runs side by side (the GPU run's host needs one core), then their curves printed next to each other and
# compared. Called by tests/gpu/check.sh (step 6) with its build's rlc; runnable alone on a GPU machine. The runs
# live in <dir of RLC>/train_compare_runs/; their metrics are copied to OUTDIR/train_{cuda,cpu}_metrics.jsonl.
#
# What "close" means. Both runs start from the same weights and see the same SFT batches and the same RL prompts
# (the problem streams and the sampling uniforms are keyed by seed, step and ids, not by the backend). The SFT phase
# has no sampling, so its losses follow each other closely (the GPU runs in the config's precision, mixed by default:
# bf16 activations and GEMMs, fp32 master weights, statistics and losses).
# The RL phase samples: once one sampled token differs, the two runs are two draws of the same training process
# on the same prompts, so only statistics can agree. Checks (failing any exits non-zero):
#   - first SFT step loss: |gpu - cpu| <= 1e-2 (1 + cpu) (same weights, same batch);
#   - last SFT step loss: |gpu - cpu| <= 0.10 cpu (the SFT curves stay together);
#   - held-out greedy success after SFT (500 problems): |gpu - cpu| <= 0.08 (two CPU seeds: 0.096 and 0.150);
#   - mean RL success rate over the RL steps: |gpu - cpu| <= 0.03 + 0.25 cpu (at the default 400 SFT steps
#     the CPU's is about 0.1: a GPU run that does not train, or one whose policy broke, falls outside);
#   - the GPU's held-out success at the end of RL >= its value after SFT - 0.05 (RL did not wreck the policy);
#   - both runs finished (exit 0) with finite losses.
# Env: RLC_TRAIN_SFT_STEPS (default 400, a fifth of the default job's), RLC_TRAIN_RL_STEPS (default 30), RLC_TRAIN_TIMEOUT
# (seconds per run, default 120), RLC_TRAIN_CPU_THREADS (OpenMP threads of the CPU run, default min(8, nproc - 2):
# the default model is small, more threads mostly add synchronisation).
set -uo pipefail
rlc=${1:?usage: train_compare.sh RLC OUTDIR}
out=${2:?usage: train_compare.sh RLC OUTDIR}
sft=${RLC_TRAIN_SFT_STEPS:-400}
rl=${RLC_TRAIN_RL_STEPS:-30}
tmo=${RLC_TRAIN_TIMEOUT:-120}
np=$(nproc)
thr=$(( np > 10 ? 8 : (np > 3 ? np - 2 : 1) ))
thr=${RLC_TRAIN_CPU_THREADS:-$thr}
runs=$(dirname "$rlc")/train_compare_runs # checkpoints stay next to the build; metrics go to OUTDIR
rm -rf "$runs"
mkdir -p "$runs" "$out"
args=(train --set sft.steps="$sft" --set rl.steps="$rl" --set eval_every=50 --set out_dir="$runs" --quiet)

t0=$(date +%s)
OMP_NUM_THREADS=1 timeout "$tmo" "$rlc" "${args[@]}" --set device=cuda --set name=cuda >"$runs/cuda.log" 2>&1 &
gpid=$!
t_cpu0=$(date +%s)
OMP_NUM_THREADS=$thr timeout "$tmo" "$rlc" "${args[@]}" --set device=cpu --set name=cpu >"$runs/cpu.log" 2>&1
crc=$?
t_cpu=$(( $(date +%s) - t_cpu0 ))
wait $gpid
grc=$?
t_all=$(( $(date +%s) - t0 ))
echo "train_compare: sft.steps=$sft rl.steps=$rl; cuda run: rc $grc; cpu run ($thr threads): rc $crc in ${t_cpu} s; both done after ${t_all} s"
for k in cuda cpu; do
    [ -s "$runs/$k.log" ] && sed "s/^/  [$k] /" "$runs/$k.log" | tail -5
done
for k in cuda cpu; do
    [ -f "$runs/$k/metrics.jsonl" ] && cp "$runs/$k/metrics.jsonl" "$out/train_${k}_metrics.jsonl"
done
if [ $grc != 0 ] || [ $crc != 0 ]; then
    echo "train_compare: FAILED (a run did not finish: cuda rc $grc, cpu rc $crc)"
    exit 1
fi

python3 - "$runs/cuda/metrics.jsonl" "$runs/cpu/metrics.jsonl" <<'EOF'
import json, math, sys

def load(path):
    recs = [json.loads(l) for l in open(path) if l.strip()]
    sft = [r for r in recs if r.get("phase") == "sft"]
    rl = [r for r in recs if r.get("phase") == "rl"]
    ev = [(r.get("phase"), r.get("step"), r["eval_success"]) for r in recs if "eval_success" in r]
    return sft, rl, ev, recs

g_sft, g_rl, g_ev, g_all = load(sys.argv[1])
c_sft, c_rl, c_ev, c_all = load(sys.argv[2])
fails = []

def check(ok, msg):
    print(("  ok    " if ok else "  FAIL  ") + msg)
    if not ok:
        fails.append(msg)

def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")

def phase_time(recs, phase, key):
    return sum(r.get(key, 0) for r in recs if r.get("phase") == phase)

n_sft = max(len(c_sft), len(g_sft))
every = max(1, n_sft // 10)
print("SFT loss (every %d steps):   step     cpu      cuda" % every)
for i in sorted(set(list(range(0, n_sft, every)) + [n_sft - 1])):
    c = c_sft[i]["loss"] if i < len(c_sft) else float("nan")
    g = g_sft[i]["loss"] if i < len(g_sft) else float("nan")
    print("                             %4d  %7.4f  %7.4f" % (i + 1, c, g))
print("held-out greedy success (eval_success):  phase/step   cpu    cuda")
for (pc, sc, vc), (pg, sg, vg) in zip(c_ev, g_ev):
    print("                                         %-7s %4d  %.3f  %.3f" % (pc, sc, vc, vg))
print("RL success rate (training samples):  step   cpu    cuda")
for i in range(max(len(c_rl), len(g_rl))):
    c = c_rl[i]["success_rate"] if i < len(c_rl) else float("nan")
    g = g_rl[i]["success_rate"] if i < len(g_rl) else float("nan")
    print("                                    %4d  %.3f  %.3f" % (i + 1, c, g))
for name, recs in (("cpu", c_all), ("cuda", g_all)):
    print("time %-4s: sft steps %.1f s, rl rollout %.1f s, rl log-prob %.1f s, rl update %.1f s, evals %.1f s" % (
        name, phase_time(recs, "sft", "time_step"), phase_time(recs, "rl", "time_rollout"),
        phase_time(recs, "rl", "time_logprob"), phase_time(recs, "rl", "time_update"),
        sum(r.get("time_eval", 0) for r in recs)))
mm = [r["logp_mismatch_mean"] for r in g_rl if "logp_mismatch_mean" in r]
if mm:
    print("cuda rollout/training log-prob mismatch (mean over tokens): first step %.2e, mean %.2e" % (mm[0], mean(mm)))

check(len(c_sft) == len(g_sft) and len(c_rl) == len(g_rl) and len(c_sft) > 0,
      "both runs logged the same steps (sft %d / %d, rl %d / %d)" % (len(c_sft), len(g_sft), len(c_rl), len(g_rl)))
finite = all(math.isfinite(r.get("loss", 0.0)) for r in g_sft + g_rl + c_sft + c_rl)
check(finite, "every logged loss is finite")
if c_sft and g_sft:
    c0, g0 = c_sft[0]["loss"], g_sft[0]["loss"]
    check(abs(g0 - c0) <= 1e-2 * (1 + abs(c0)), "first SFT loss: cpu %.5f cuda %.5f" % (c0, g0))
    c1, g1 = c_sft[-1]["loss"], g_sft[-1]["loss"]
    check(abs(g1 - c1) <= 0.10 * abs(c1), "last SFT loss: cpu %.5f cuda %.5f (within 10%%)" % (c1, g1))
ce = [v for p, s, v in c_ev if p.startswith("rl")]
ge = [v for p, s, v in g_ev if p.startswith("rl")]
if ce and ge:
    check(abs(ce[0] - ge[0]) <= 0.08, "eval success after SFT: cpu %.3f cuda %.3f (within 0.08)" % (ce[0], ge[0]))
    check(ge[-1] >= ge[0] - 0.05, "cuda eval success at the end of RL %.3f >= after SFT %.3f - 0.05" % (ge[-1], ge[0]))
if c_rl and g_rl:
    cm, gm = mean([r["success_rate"] for r in c_rl]), mean([r["success_rate"] for r in g_rl])
    tol = 0.03 + 0.25 * cm
    check(abs(cm - gm) <= tol, "mean RL success rate over %d steps: cpu %.3f cuda %.3f (within %.3f)" % (
        len(c_rl), cm, gm, tol))
print("train_compare: %s" % ("PASS" if not fails else "FAILED (%d checks)" % len(fails)))
sys.exit(1 if fails else 0)
EOF
