// tests/emu/kat.h: known-answer tests (KATs) of the CUDA emulator. Each tests/emu/kat_*.cu file defines
// kernels and KAT(name) { ... } host bodies that fill inputs deterministically, launch, check the result
// against an independent CPU computation (kat_check) and record the raw outputs (out.f32 / out.u32).
// The same sources build two ways:
//   - g++ -DRLC_EMU (ctest emu_kat): every KAT runs under the three schedules and must give identical bits;
//   - nvcc (tests/gpu/check.sh): every KAT runs on the GPU; the recorded outputs of both builds are dumped
//     and compared (bitwise for integers, with the recorded tolerance for floats), which checks the
//     emulator's mma/ldmatrix/shuffle/atomic semantics against hardware.
#pragma once
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "rlc_cuda.h"

struct KatOut {
    struct Item {
        std::string name;
        bool is_float;
        double tol; // floats: allowed |emu - gpu| <= tol * max(1, |gpu|); 0 = bitwise
        std::vector<uint32_t> bits;
    };
    std::vector<Item> items;
    int failures = 0, checks = 0;
    const char *kat = "";

    void f32(const char *name, const std::vector<float> &v, double tol) {
        Item it{name, true, tol, std::vector<uint32_t>(v.size())};
        memcpy(it.bits.data(), v.data(), v.size() * 4);
        items.push_back(it);
    }
    template <class T> void u32(const char *name, const std::vector<T> &v) {
        static_assert(sizeof(T) == 4, "u32 outputs are 32-bit");
        Item it{name, false, 0.0, std::vector<uint32_t>(v.size())};
        memcpy(it.bits.data(), v.data(), v.size() * 4);
        items.push_back(it);
    }
};

// CHECK against the CPU reference; prints only the first few failures of a KAT.
inline void kat_check(KatOut &o, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
inline void kat_check(KatOut &o, bool ok, const char *fmt, ...) {
    o.checks++;
    if (ok) return;
    if (o.failures++ < 8) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "  %s: FAIL: ", o.kat);
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
    }
}

struct Kat {
    const char *name;
    void (*fn)(KatOut &);
};
inline std::vector<Kat> &kat_registry() {
    static std::vector<Kat> r;
    return r;
}
struct KatRegistrar {
    KatRegistrar(const char *name, void (*fn)(KatOut &)) { kat_registry().push_back(Kat{name, fn}); }
};
#define KAT(name)                                                                                              \
    static void kat_##name(KatOut &out);                                                                       \
    static KatRegistrar kat_registrar_##name(#name, kat_##name);                                               \
    static void kat_##name(KatOut &out)

// Deterministic test data (a hash, so that every build and machine draws the same inputs).
inline uint32_t kat_hash(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}
// Uniform in [-1, 1), multiple of 2^-12 (exact in bf16 for |x| >= 2^-5 ... and exact in float always).
inline float kat_uniform(uint32_t i, uint32_t salt) {
    return (float)((int)(kat_hash(i * 2654435761u + salt) % 8192u) - 4096) / 4096.0f;
}

template <class T> inline T *kat_upload(const std::vector<T> &h) {
    T *d = nullptr;
    RLC_CUDA_CHECK(cudaMalloc((void **)&d, h.size() * sizeof(T)));
    RLC_CUDA_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}
template <class T> inline std::vector<T> kat_download(const T *d, size_t n) {
    std::vector<T> h(n);
    RLC_CUDA_CHECK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
}
#define KAT_SYNC()                                                                                             \
    do {                                                                                                       \
        RLC_CUDA_CHECK(cudaGetLastError());                                                                    \
        RLC_CUDA_CHECK(cudaDeviceSynchronize());                                                               \
    } while (0)
