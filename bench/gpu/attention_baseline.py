#!/usr/bin/env python3
"""bench/gpu/attention_baseline.py: the torch baseline of bench/bench_attention_gpu.cu.

Times torch.nn.functional.scaled_dot_product_attention with the flash backend, causal, bf16, at the shapes given
on the command line as NH,NKV,HD,T,L (T tokens packed as T/L sequences of length L: varlen is emulated by one
batch of equal lengths, the same work as our packed call). K and V are expanded from NKV to NH heads before
timing (the flash backend takes equal head counts); tensors use our (tokens, heads, head_dim) memory layout
through a transposed view. Prints one line per shape:
    sdpa NH NKV HD T L fwd_ms bwd_ms
(median of cudaEvent timings; the backward is torch.autograd.grad of the output for q, k, v). Prints an
explanation instead, and exits 0, when torch or a GPU is missing, so the bench prints "n/a".
"""
import sys


def main():
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # no torch: the bench prints n/a
        print(f"torch not available: {e}")
        return 0
    if not torch.cuda.is_available():
        print("torch: no CUDA device")
        return 0
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        ctx = lambda: sdpa_kernel(SDPBackend.FLASH_ATTENTION)
    except Exception:  # older torch
        ctx = lambda: torch.backends.cuda.sdp_kernel(enable_flash=True, enable_math=False, enable_mem_efficient=False)

    # twice the L2 in bytes, zeroed before each timed rep as bench_gpu.h does (BENCH_QUEUED): cold L2, and the
    # timed launches queue behind it, so the events time the device rather than Python's launch latency
    l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0) or (64 << 20)
    flush = torch.empty(2 * l2, dtype=torch.uint8, device="cuda")

    def time_ms(fn, reps):
        fn()
        fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(reps):
            a = torch.cuda.Event(enable_timing=True)
            b = torch.cuda.Event(enable_timing=True)
            flush.zero_()  # L2 flush; the launches below queue behind it (bench/gpu/bench_gpu.h)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        times.sort()
        return times[len(times) // 2]

    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}")
    for arg in sys.argv[1:]:
        NH, NKV, HD, T, L = (int(x) for x in arg.split(","))
        B, rep = T // L, NH // NKV
        g = torch.Generator(device="cuda").manual_seed(0)
        mk = lambda h: torch.randn(B, L, h, HD, device="cuda", dtype=torch.bfloat16, generator=g)
        q = mk(NH).transpose(1, 2).requires_grad_()
        k = mk(NKV).repeat_interleave(rep, dim=2).transpose(1, 2).detach().requires_grad_()
        v = mk(NKV).repeat_interleave(rep, dim=2).transpose(1, 2).detach().requires_grad_()
        do = mk(NH).transpose(1, 2)
        reps = 5 if T >= 16384 else 10
        try:
            with ctx():
                fwd = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), reps)
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                bwd = time_ms(lambda: torch.autograd.grad(out, (q, k, v), do, retain_graph=True), reps)
        except Exception as e:
            print(f"sdpa failed at {arg}: {e}")
            continue
        print(f"sdpa {NH} {NKV} {HD} {T} {L} {fwd:.4f} {bwd:.4f}", flush=True)
        del q, k, v, do, out
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
