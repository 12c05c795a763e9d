#!/usr/bin/env python3
"""bench/gpu/logprob_baseline.py: the PyTorch baseline of bench/gpu/bench_logprob_gpu.cu.

Times, at the same LM-head shapes (Qwen2.5-0.5B-like C 896 / V 151936 and 7B-like C 3584 / V 152064, 4k to 32k
tokens), what a PyTorch trainer does for per-token log-probs and entropy:
    logits = (hidden @ w.T).float() / tau; logp_all = log_softmax(logits); logp = gather(logp_all, targets);
    entropy = -(exp(logp_all) * logp_all).sum(-1)
in bf16 inputs with fp32 softmax, processed in token chunks (--chunk, default 4096) because the full T x V fp32
intermediates of 32k tokens (three of 20 GB) do not fit; also the LM-head GEMM alone (bf16 logits) for the
same ratio as the CUDA bench, and with --backward the autograd backward of (sum of logp + 0.01 * entropy).
Prints one row per shape: ms, TFLOP/s (2TVC forward, 6TVC backward), peak extra memory (torch's allocator
peak above the inputs), ratio to the GEMM. Run by tests/gpu/check.sh when torch is present.
    python3 bench/gpu/logprob_baseline.py [--reps 3] [--max-tokens 32768] [--chunk 4096] [--backward]
"""
import argparse
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=32768)
    ap.add_argument("--chunk", type=int, default=4096, help="tokens per torch chunk (memory bound)")
    ap.add_argument("--tau", type=float, default=1.0)
    ap.add_argument("--backward", action="store_true", help="also time the autograd backward")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("logprob_baseline: torch is not installed; skipped")
        return 0
    if not torch.cuda.is_available():
        print("logprob_baseline: no CUDA device; skipped")
        return 0
    dev = torch.device("cuda")
    torch.manual_seed(0)

    # twice the L2 in bytes, zeroed before each timed rep as bench_gpu.h does (BENCH_QUEUED): cold L2, and the
    # timed launches queue behind it, so the events time the device rather than Python's launch latency
    l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0) or (64 << 20)
    flush = torch.empty(2 * l2, dtype=torch.uint8, device="cuda")

    def time_best(fn):
        fn()  # warm-up
        torch.cuda.synchronize()
        best = float("inf")
        for _ in range(args.reps):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            flush.zero_()  # L2 flush; the launches below queue behind it (bench/gpu/bench_gpu.h)
            a.record()
            fn()
            b.record()
            b.synchronize()
            best = min(best, a.elapsed_time(b))
        return best

    def logprob_entropy(h, w, tgt):
        logits = (h @ w.t()).float() / args.tau
        lp_all = torch.log_softmax(logits, dim=-1)
        logp = lp_all.gather(-1, tgt.clamp_min(0).unsqueeze(-1)).squeeze(-1)
        ent = -(lp_all.exp() * lp_all).sum(-1)
        return logp, ent

    print(f"logprob_baseline on {torch.cuda.get_device_name()}: torch log_softmax + gather + entropy "
          f"(token chunks of {args.chunk}) vs the LM-head GEMM alone")
    print(f"{'shape':13s} {'T':>6s} {'C':>5s} {'V':>7s} | {'fwd ms':>8s} {'TFLOP/s':>7s} | {'bwd ms':>8s} "
          f"{'TFLOP/s':>7s} | {'gemm ms':>8s} {'TFLOP/s':>7s} | {'extra MiB':>9s} | fwd/gemm")
    for name, C, V in (("qwen2.5-0.5b", 896, 151936), ("qwen2.5-7b", 3584, 152064)):
        for T in (4096, 16384, 32768):
            if T > args.max_tokens:
                continue
            h = (torch.rand(T, C, device=dev) - 0.5).mul_(4.0).to(torch.bfloat16)
            w = ((torch.rand(V, C, device=dev) - 0.5) * (4.0 / C ** 0.5)).to(torch.bfloat16)
            tgt = (torch.arange(T, device=dev) * 7919) % V
            out_lp = torch.empty(T, device=dev)
            out_en = torch.empty(T, device=dev)

            def fwd():
                with torch.no_grad():
                    for t0 in range(0, T, args.chunk):
                        lp, en = logprob_entropy(h[t0:t0 + args.chunk], w, tgt[t0:t0 + args.chunk])
                        out_lp[t0:t0 + args.chunk] = lp
                        out_en[t0:t0 + args.chunk] = en

            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            f_ms = time_best(fwd)
            extra = (torch.cuda.max_memory_allocated() - base) / 2**20

            b_ms = float("nan")
            if args.backward:
                hg = h.detach().requires_grad_(True)
                wg = w.detach().requires_grad_(True)

                def fwd_bwd():
                    hg.grad = None
                    wg.grad = None
                    for t0 in range(0, T, args.chunk):
                        lp, en = logprob_entropy(hg[t0:t0 + args.chunk], wg, tgt[t0:t0 + args.chunk])
                        (lp.sum() + 0.01 * en.sum()).backward()

                b_ms = time_best(fwd_bwd) - f_ms  # backward alone, approximately
                del hg, wg

            g_ms = float("nan")
            try:
                logits = torch.empty(T, V, device=dev, dtype=torch.bfloat16)
                g_ms = time_best(lambda: torch.matmul(h, w.t(), out=logits))
                del logits
            except torch.cuda.OutOfMemoryError:
                pass
            fl = 2.0 * T * V * C
            print(f"{name:13s} {T:6d} {C:5d} {V:7d} | {f_ms:8.2f} {fl / f_ms / 1e9:7.1f} | {b_ms:8.2f} "
                  f"{3 * fl / b_ms / 1e9 if b_ms == b_ms else float('nan'):7.1f} | {g_ms:8.2f} "
                  f"{fl / g_ms / 1e9:7.1f} | {extra:9.1f} | {f_ms / g_ms:.2f}x")
            del h, w, tgt, out_lp, out_en
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
