// tests/emu/kat_gemm.cu: known answers for the tensor-core path: raw ldmatrix (x1/x2/x4, with and without
// .trans, rows at scattered addresses), raw mma.sync m16n8k16 bf16 -> f32 with fragments built by the
// layout formulas, and a 64x64x64 bf16 GEMM built from cp.async + ldmatrix + mma.sync compared with a CPU
// GEMM. Layouts: shared/spec/tensor_core_layouts.md.
#include "kat.h"

// One warp; lane l supplies the address of row perm(l) of a 32-row table (rows 16 elements apart).
__device__ __host__ inline int ldm_perm(int l) { return (l * 5 + 3) & 31; }

__global__ void ldmatrix_kernel(const uint16_t *table, uint32_t *out) {
    __shared__ __align__(16) uint16_t sm[32 * 16];
    int lane = threadIdx.x;
    for (int i = lane; i < 32 * 16; i += 32) sm[i] = table[i];
    __syncwarp();
    const void *row = &sm[ldm_perm(lane) * 16];
    uint32_t r1[1], r2[2], r4[4], t1[1], t2[2], t4[4];
    rlc_ldmatrix_x1(r1, row);
    rlc_ldmatrix_x2(r2, row);
    rlc_ldmatrix_x4(r4, row);
    rlc_ldmatrix_x1_trans(t1, row);
    rlc_ldmatrix_x2_trans(t2, row);
    rlc_ldmatrix_x4_trans(t4, row);
    uint32_t *o = out + lane * 14;
    o[0] = r1[0];
    o[1] = r2[0], o[2] = r2[1];
    o[3] = r4[0], o[4] = r4[1], o[5] = r4[2], o[6] = r4[3];
    o[7] = t1[0];
    o[8] = t2[0], o[9] = t2[1];
    o[10] = t4[0], o[11] = t4[1], o[12] = t4[2], o[13] = t4[3];
}

__device__ inline uint32_t pack_bf16(__nv_bfloat16 lo, __nv_bfloat16 hi) {
    return (uint32_t)__bfloat16_as_ushort(lo) | ((uint32_t)__bfloat16_as_ushort(hi) << 16);
}

// D (16x8) = A (16x16 row-major) B (16x8, k x n row-major) + C, fragments by the spec's formulas.
__global__ void mma_kernel(const __nv_bfloat16 *A, const __nv_bfloat16 *B, const float *C, float *D) {
    int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
    uint32_t a[4] = {pack_bf16(A[g * 16 + 2 * t], A[g * 16 + 2 * t + 1]),
                     pack_bf16(A[(g + 8) * 16 + 2 * t], A[(g + 8) * 16 + 2 * t + 1]),
                     pack_bf16(A[g * 16 + 2 * t + 8], A[g * 16 + 2 * t + 9]),
                     pack_bf16(A[(g + 8) * 16 + 2 * t + 8], A[(g + 8) * 16 + 2 * t + 9])};
    uint32_t b[2] = {pack_bf16(B[(2 * t) * 8 + g], B[(2 * t + 1) * 8 + g]),
                     pack_bf16(B[(2 * t + 8) * 8 + g], B[(2 * t + 9) * 8 + g])};
    float c[4] = {C[g * 8 + 2 * t], C[g * 8 + 2 * t + 1], C[(g + 8) * 8 + 2 * t], C[(g + 8) * 8 + 2 * t + 1]};
    float d[4];
    rlc_mma_m16n8k16_bf16(d, a, b, c);
    D[g * 8 + 2 * t] = d[0];
    D[g * 8 + 2 * t + 1] = d[1];
    D[(g + 8) * 8 + 2 * t] = d[2];
    D[(g + 8) * 8 + 2 * t + 1] = d[3];
}

// C (64x64 f32) = A (64x64 bf16 row-major) B (64x64 bf16 row-major, k x n). One block of 4 warps; warp w
// owns rows 16w..16w+15. variant 0 loads B fragments with ldmatrix.x2.trans, variant 1 with x4.trans.
constexpr int GEMM_N = 64, GEMM_LDS = 72; // padded shared rows (144 bytes: 16-byte aligned)
__global__ void gemm_kernel(const __nv_bfloat16 *A, const __nv_bfloat16 *B, float *C, int variant) {
    RLC_DYN_SMEM(__nv_bfloat16, As);
    __nv_bfloat16 *Bs = As + GEMM_N * GEMM_LDS;
    int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    for (int c = tid; c < GEMM_N * 8; c += blockDim.x)
        rlc_cp_async16(&As[(c / 8) * GEMM_LDS + (c % 8) * 8], &A[(c / 8) * GEMM_N + (c % 8) * 8]);
    rlc_cp_async_commit();
    for (int c = tid; c < GEMM_N * 8; c += blockDim.x)
        rlc_cp_async16(&Bs[(c / 8) * GEMM_LDS + (c % 8) * 8], &B[(c / 8) * GEMM_N + (c % 8) * 8]);
    rlc_cp_async_commit();
    rlc_cp_async_wait<1>(); // A has landed (B may still be in flight)
    __syncthreads();
    uint32_t afrag[4][4];
    for (int kk = 0; kk < 4; kk++)
        rlc_ldmatrix_x4(afrag[kk], &As[(16 * warp + (lane & 15)) * GEMM_LDS + kk * 16 + (lane >> 4) * 8]);
    rlc_cp_async_wait<0>();
    __syncthreads();
    float acc[8][4];
    for (int j = 0; j < 8; j++)
        for (int r = 0; r < 4; r++) acc[j][r] = 0.0f;
    for (int kk = 0; kk < 4; kk++) {
        if (variant == 0) {
            for (int j = 0; j < 8; j++) {
                uint32_t b[2];
                rlc_ldmatrix_x2_trans(b, &Bs[(kk * 16 + (lane & 15)) * GEMM_LDS + j * 8]);
                rlc_mma_m16n8k16_bf16(acc[j], afrag[kk], b, acc[j]);
            }
        } else {
            for (int jp = 0; jp < 4; jp++) {
                int q = lane >> 3;
                uint32_t b4[4];
                rlc_ldmatrix_x4_trans(b4, &Bs[(kk * 16 + (q & 1) * 8 + (lane & 7)) * GEMM_LDS + (2 * jp + (q >> 1)) * 8]);
                uint32_t b0[2] = {b4[0], b4[1]}, b1[2] = {b4[2], b4[3]};
                rlc_mma_m16n8k16_bf16(acc[2 * jp], afrag[kk], b0, acc[2 * jp]);
                rlc_mma_m16n8k16_bf16(acc[2 * jp + 1], afrag[kk], b1, acc[2 * jp + 1]);
            }
        }
    }
    int g = lane >> 2, t = lane & 3, r0 = 16 * warp + g;
    for (int j = 0; j < 8; j++) {
        C[r0 * GEMM_N + j * 8 + 2 * t] = acc[j][0];
        C[r0 * GEMM_N + j * 8 + 2 * t + 1] = acc[j][1];
        C[(r0 + 8) * GEMM_N + j * 8 + 2 * t] = acc[j][2];
        C[(r0 + 8) * GEMM_N + j * 8 + 2 * t + 1] = acc[j][3];
    }
}

static std::vector<__nv_bfloat16> bf16_random(size_t n, uint32_t salt, std::vector<float> &as_float) {
    std::vector<__nv_bfloat16> v(n);
    as_float.resize(n);
    for (size_t i = 0; i < n; i++) {
        v[i] = __float2bfloat16(kat_uniform((uint32_t)i, salt));
        as_float[i] = __bfloat162float(v[i]);
    }
    return v;
}

KAT(ldmatrix) {
    std::vector<uint16_t> table(32 * 16);
    for (int i = 0; i < 32 * 16; i++) table[i] = (uint16_t)(i * 37 + 11);
    uint16_t *d_table = kat_upload(table);
    uint32_t *d_out = nullptr;
    RLC_CUDA_CHECK(cudaMalloc((void **)&d_out, 32 * 14 * 4));
    RLC_LAUNCH(ldmatrix_kernel, 1, 32, 0, 0, d_table, d_out);
    KAT_SYNC();
    std::vector<uint32_t> o = kat_download(d_out, 32 * 14);
    // M_j[r][c] = element c of the row whose address lane 8j+r supplied.
    auto M = [&](int j, int r, int c) { return (uint32_t)table[ldm_perm(8 * j + r) * 16 + c]; };
    const int first_reg[2][3] = {{0, 1, 3}, {7, 8, 10}}; // [trans][x1,x2,x4]
    const int ntiles[3] = {1, 2, 4};
    for (int l = 0; l < 32; l++)
        for (int tr = 0; tr < 2; tr++)
            for (int s = 0; s < 3; s++)
                for (int j = 0; j < ntiles[s]; j++) {
                    uint32_t lo, hi;
                    if (!tr) lo = M(j, l >> 2, 2 * (l & 3)), hi = M(j, l >> 2, 2 * (l & 3) + 1);
                    else lo = M(j, 2 * (l & 3), l >> 2), hi = M(j, 2 * (l & 3) + 1, l >> 2);
                    uint32_t got = o[l * 14 + first_reg[tr][s] + j], exp = lo | (hi << 16);
                    kat_check(out, got == exp, "ldmatrix x%d%s lane %d reg %d: 0x%08x expected 0x%08x", ntiles[s],
                              tr ? ".trans" : "", l, j, got, exp);
                }
    out.u32("ldmatrix", o);
    cudaFree(d_table);
    cudaFree(d_out);
}

KAT(mma) {
    std::vector<float> af, bf;
    std::vector<__nv_bfloat16> A = bf16_random(16 * 16, 21, af), B = bf16_random(16 * 8, 22, bf);
    std::vector<float> C(16 * 8);
    for (int i = 0; i < 16 * 8; i++) C[i] = kat_uniform((uint32_t)i, 23);
    __nv_bfloat16 *d_A = kat_upload(A), *d_B = kat_upload(B);
    float *d_C = kat_upload(C), *d_D = nullptr;
    RLC_CUDA_CHECK(cudaMalloc((void **)&d_D, 16 * 8 * 4));
    RLC_LAUNCH(mma_kernel, 1, 32, 0, 0, d_A, d_B, d_C, d_D);
    KAT_SYNC();
    std::vector<float> D = kat_download(d_D, 16 * 8);
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 8; n++) {
            double s = C[m * 8 + n], sa = fabs(C[m * 8 + n]);
            for (int k = 0; k < 16; k++) s += (double)af[m * 16 + k] * bf[k * 8 + n], sa += fabs(af[m * 16 + k] * bf[k * 8 + n]);
            kat_check(out, fabs(D[m * 8 + n] - s) <= 1e-5 * 16 * sa + 1e-7, "mma D[%d][%d] = %.9g expected %.9g", m,
                      n, D[m * 8 + n], s);
        }
    out.f32("mma_D", D, 2e-5);
    cudaFree(d_A);
    cudaFree(d_B);
    cudaFree(d_C);
    cudaFree(d_D);
}

KAT(gemm64) {
    const int N = GEMM_N;
    std::vector<float> af, bf;
    std::vector<__nv_bfloat16> A = bf16_random(N * N, 31, af), B = bf16_random(N * N, 32, bf);
    __nv_bfloat16 *d_A = kat_upload(A), *d_B = kat_upload(B);
    float *d_C = nullptr;
    RLC_CUDA_CHECK(cudaMalloc((void **)&d_C, N * N * 4));
    size_t smem = 2 * N * GEMM_LDS * sizeof(__nv_bfloat16);
    for (int variant = 0; variant < 2; variant++) {
        RLC_CUDA_CHECK(cudaMemset(d_C, 0xFF, N * N * 4)); // poison: every element must be written
        RLC_LAUNCH(gemm_kernel, 1, 128, smem, 0, d_A, d_B, d_C, variant);
        KAT_SYNC();
        std::vector<float> C = kat_download(d_C, N * N);
        for (int m = 0; m < N; m++)
            for (int n = 0; n < N; n++) {
                double s = 0, sa = 0;
                for (int k = 0; k < N; k++) s += (double)af[m * N + k] * bf[k * N + n], sa += fabs(af[m * N + k] * bf[k * N + n]);
                kat_check(out, fabs(C[m * N + n] - s) <= 1e-5 * N * sa + 1e-6,
                          "gemm variant %d C[%d][%d] = %.9g expected %.9g", variant, m, n, C[m * N + n], s);
            }
        out.f32(variant ? "gemm_x4trans" : "gemm_x2trans", C, 1e-4);
    }
    cudaFree(d_A);
    cudaFree(d_B);
    cudaFree(d_C);
}
