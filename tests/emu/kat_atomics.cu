// tests/emu/kat_atomics.cu: known answers for atomics on global and shared memory (int, unsigned, float and
// double add, the vector reduction rlc_red_add_f32x2, CAS loops, exchange, min/max, inc), __syncthreads_count/_and/_or, and the threadfence
// "last block" reduction. Values are chosen so that every result is independent of the order of the
// atomic operations (small integers and multiples of 0.5 add exactly), hence bitwise comparable.
#include "kat.h"

struct AtomicOut {
    int iadd, imin, imax, cas_count, exch_sum, exch_final;
    unsigned uadd, ticket;
    float fadd;
    double dadd;
    float f2add[2];
    int hist[16];
    float shared_fsum;
    float total;
};

__global__ void atomics_kernel(AtomicOut *o, float *partials, int *bar_out) {
    __shared__ int hist[16];
    __shared__ float fsum;
    __shared__ bool am_last;
    int t = threadIdx.x, gid = blockIdx.x * blockDim.x + t;
    uint32_t h = (uint32_t)gid * 2654435761u;
    h ^= h >> 13;
    if (t < 16) hist[t] = 0;
    if (t == 0) fsum = 0.0f;
    __syncthreads();
    atomicAdd(&o->iadd, gid % 5);
    atomicAdd(&o->uadd, (unsigned)(gid % 3));
    atomicMin(&o->imin, (int)(h % 100000u) - 50000);
    atomicMax(&o->imax, (int)(h % 100000u) - 50000);
    atomicAdd(&o->fadd, 0.5f * (float)(gid % 4));
    atomicAdd(&o->dadd, 0.25 * (double)(gid % 8));
    rlc_red_add_f32x2(o->f2add, 0.5f * (float)(gid % 3), -1.0f);
    int old = atomicOr(&o->cas_count, 0), assumed; // an atomic read (a plain one would race with the CAS)
    do { // increment through a CAS loop
        assumed = old;
        old = atomicCAS(&o->cas_count, assumed, assumed + 1);
    } while (old != assumed);
    int prev = atomicExch(&o->exch_final, gid);
    atomicAdd(&o->exch_sum, prev);
    atomicAdd(&hist[h % 16u], 1);
    atomicAdd(&fsum, 1.5f);
    int c = __syncthreads_count(h & 1);
    int a = __syncthreads_and(gid >= 0);
    int r = __syncthreads_or((h % 1000u) == 7u);
    if (t == 0) {
        bar_out[blockIdx.x * 3 + 0] = c;
        bar_out[blockIdx.x * 3 + 1] = a;
        bar_out[blockIdx.x * 3 + 2] = r;
    }
    if (t < 16) atomicAdd(&o->hist[t], hist[t]);
    if (t == 0) atomicAdd(&o->shared_fsum, fsum);
    // threadfence reduction: every block publishes a partial; the last one to take a ticket sums them.
    if (t == 0) {
        partials[blockIdx.x] = (float)(blockIdx.x + 1);
        __threadfence();
        unsigned ticket = atomicInc(&o->ticket, gridDim.x - 1);
        am_last = ticket == gridDim.x - 1;
    }
    __syncthreads();
    if (am_last && t == 0) {
        __threadfence();
        float s = 0.0f;
        for (unsigned b = 0; b < gridDim.x; b++) s += ((volatile float *)partials)[b];
        o->total = s;
    }
}

KAT(atomics) {
    const int blocks = 16, threads = 128, n = blocks * threads;
    AtomicOut init{};
    init.imin = 1 << 30;
    init.imax = -(1 << 30);
    init.exch_final = -1;
    AtomicOut *d_o = nullptr;
    float *d_part = nullptr;
    int *d_bar = nullptr;
    RLC_CUDA_CHECK(cudaMalloc((void **)&d_o, sizeof init));
    RLC_CUDA_CHECK(cudaMemcpy(d_o, &init, sizeof init, cudaMemcpyHostToDevice));
    RLC_CUDA_CHECK(cudaMalloc((void **)&d_part, blocks * 4));
    RLC_CUDA_CHECK(cudaMalloc((void **)&d_bar, blocks * 3 * 4));
    RLC_LAUNCH(atomics_kernel, blocks, threads, 0, 0, d_o, d_part, d_bar);
    KAT_SYNC();
    AtomicOut o;
    RLC_CUDA_CHECK(cudaMemcpy(&o, d_o, sizeof o, cudaMemcpyDeviceToHost));
    std::vector<int> bar = kat_download(d_bar, blocks * 3);
    // CPU reference
    long iadd = 0, uadd = 0, exch = 0;
    int imin = 1 << 30, imax = -(1 << 30), hist[16] = {0};
    double fadd = 0, dadd = 0, f2x = 0;
    std::vector<int> bar_ref(blocks * 3, 0);
    for (int gid = 0; gid < n; gid++) {
        uint32_t h = (uint32_t)gid * 2654435761u;
        h ^= h >> 13;
        iadd += gid % 5, uadd += gid % 3;
        imin = std::min(imin, (int)(h % 100000u) - 50000);
        imax = std::max(imax, (int)(h % 100000u) - 50000);
        fadd += 0.5 * (gid % 4), dadd += 0.25 * (gid % 8), f2x += 0.5 * (gid % 3);
        exch += gid;
        hist[h % 16u]++;
        int b = gid / threads;
        bar_ref[b * 3] += h & 1;
        bar_ref[b * 3 + 2] |= (h % 1000u) == 7u;
    }
    for (int b = 0; b < blocks; b++) bar_ref[b * 3 + 1] = 1;
    kat_check(out, o.iadd == iadd, "iadd %d vs %ld", o.iadd, iadd);
    kat_check(out, (long)o.uadd == uadd, "uadd %u vs %ld", o.uadd, uadd);
    kat_check(out, o.imin == imin && o.imax == imax, "min/max %d %d vs %d %d", o.imin, o.imax, imin, imax);
    kat_check(out, o.fadd == (float)fadd && o.dadd == dadd, "fadd %g dadd %g vs %g %g", o.fadd, o.dadd, fadd, dadd);
    kat_check(out, o.f2add[0] == (float)f2x && o.f2add[1] == (float)-n, "f32x2 reduction %g %g vs %g %d", o.f2add[0],
              o.f2add[1], f2x, -n);
    kat_check(out, o.cas_count == n, "CAS-loop count %d vs %d", o.cas_count, n);
    // Every value written by atomicExch is read back exactly once (by the next exchange or at the end).
    kat_check(out, (long)o.exch_sum + o.exch_final == exch - 1, "exch: %d + %d vs %ld", o.exch_sum, o.exch_final, exch - 1);
    for (int i = 0; i < 16; i++) kat_check(out, o.hist[i] == hist[i], "shared hist[%d] %d vs %d", i, o.hist[i], hist[i]);
    kat_check(out, o.shared_fsum == 1.5f * n, "shared float sum %g vs %g", o.shared_fsum, 1.5 * n);
    kat_check(out, o.total == (float)(blocks * (blocks + 1) / 2), "threadfence total %g", o.total);
    kat_check(out, o.ticket == 0, "atomicInc wrapped to %u", o.ticket);
    for (int i = 0; i < blocks * 3; i++) kat_check(out, bar[i] == bar_ref[i], "__syncthreads_* [%d] %d vs %d", i, bar[i], bar_ref[i]);
    std::vector<uint32_t> ints = {(uint32_t)o.iadd, o.uadd, (uint32_t)o.imin, (uint32_t)o.imax, (uint32_t)o.cas_count,
                                  (uint32_t)(o.exch_sum + o.exch_final), o.ticket};
    for (int i = 0; i < 16; i++) ints.push_back((uint32_t)o.hist[i]);
    out.u32("atomics_int", ints);
    out.f32("atomics_float", std::vector<float>{o.fadd, (float)o.dadd, o.shared_fsum, o.total, o.f2add[0], o.f2add[1]},
            0.0);
    out.u32("syncthreads_count_and_or", bar);
    cudaFree(d_o);
    cudaFree(d_part);
    cudaFree(d_bar);
}
