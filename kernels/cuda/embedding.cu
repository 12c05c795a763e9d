// kernels/cuda/embedding.cu: embedding lookup and its deterministic scatter-add backward (interface:
// embedding.h; CPU twin: kernels/cpu/ops_cpu.c).
// Backward, in two kernels and without float atomics:
//   1. rank sort: position t has key (tokens[t], t); its rank is the number of keys smaller than it, counted by
//      comparing against every other position through 256-token tiles in shared memory. Keys are distinct, so
//      perm[rank] = t is a permutation: the positions sorted by (token, position), whatever the schedule.
//   2. group sums: sorted index s starts a group when its token differs from index s-1's. The block that meets
//      a group start (grid-stride over s; grid y splits the columns) adds the group's dout rows into its dwte
//      row in position order, one thread per column: every dwte element has one writer, and receives the same
//      additions in the same order as in the CPU twin, so the two agree bit for bit.
// The forward is a gather, one thread per output element.
#include "embedding.h"

#include "rlc_cuda.h"

#define EMB_THREADS 256
#define EMB_MAX_BLOCKS 8192

static int emb_launch_ok(const char *what) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return 0;
    fprintf(stderr, "%s: kernel launch failed: %s\n", what, cudaGetErrorString(e));
    return -1;
}

__global__ void emb_forward_kernel(float *out, const int *tokens, const float *wte, size_t n, int C) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / C;
        int c = (int)(i - t * C);
        out[i] = wte[(size_t)tokens[t] * C + c];
    }
}

// One thread per position; every thread of the block takes part in the tile loads and barriers.
__global__ void emb_rank_kernel(int *perm, const int *tokens, int T) {
    __shared__ int tile[EMB_THREADS];
    const int t = blockIdx.x * EMB_THREADS + threadIdx.x;
    const int tok = t < T ? tokens[t] : 0;
    int rank = 0;
    for (int j0 = 0; j0 < T; j0 += EMB_THREADS) {
        const int j = j0 + threadIdx.x;
        tile[threadIdx.x] = j < T ? tokens[j] : 0;
        __syncthreads();
        const int n = T - j0 < EMB_THREADS ? T - j0 : EMB_THREADS;
        for (int k = 0; k < n; k++) {
            const int tk = tile[k];
            rank += (tk < tok) | ((tk == tok) & (j0 + k < t));
        }
        __syncthreads();
    }
    if (t < T) perm[rank] = t;
}

__global__ void emb_group_sum_kernel(float *dwte, const float *dout, const int *tokens, const int *perm, int T, int C) {
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return; // no barriers here
    for (int s = blockIdx.x; s < T; s += gridDim.x) {
        const int tok = tokens[perm[s]];
        if (tok < 0 || (s > 0 && tokens[perm[s - 1]] == tok)) continue; // not a group start
        float *dst = dwte + (size_t)tok * C + c;
        float acc = *dst;
        for (int i = s; i < T; i++) {
            const int t = perm[i];
            if (tokens[t] != tok) break;
            acc += dout[(size_t)t * C + c];
        }
        *dst = acc;
    }
}

extern "C" int rlc_cuda_embedding_forward(float *out, const int *tokens, const float *wte, int T, int C,
                                          void *stream) {
    if (T <= 0 || C <= 0) return 0;
    const size_t n = (size_t)T * C;
    size_t blocks = (n + EMB_THREADS - 1) / EMB_THREADS;
    if (blocks > EMB_MAX_BLOCKS) blocks = EMB_MAX_BLOCKS;
    RLC_LAUNCH(emb_forward_kernel, (unsigned)blocks, EMB_THREADS, 0, (cudaStream_t)stream, out, tokens, wte, n, C);
    return emb_launch_ok("rlc_cuda_embedding_forward");
}

extern "C" size_t rlc_cuda_embedding_backward_workspace_bytes(int T) {
    return (size_t)(T > 0 ? T : 1) * sizeof(int);
}

extern "C" int rlc_cuda_embedding_backward(float *dwte, const float *dout, const int *tokens, int T, int C,
                                           void *workspace, void *stream) {
    if (T <= 0 || C <= 0) return 0;
    if (!workspace) {
        fprintf(stderr, "rlc_cuda_embedding_backward: a workspace of %zu bytes is required\n",
                rlc_cuda_embedding_backward_workspace_bytes(T));
        return -1;
    }
    cudaStream_t st = (cudaStream_t)stream;
    int *perm = (int *)workspace;
    RLC_LAUNCH(emb_rank_kernel, (T + EMB_THREADS - 1) / EMB_THREADS, EMB_THREADS, 0, st, perm, tokens, T);
    if (emb_launch_ok("rlc_cuda_embedding_backward (rank)")) return -1;
    // Narrow rows: a block of ceil(C / 32) warps. Grid x: enough blocks to cover the GPU, each taking sorted
    // indices s, s + gridDim.x, ... (most indices are not group starts and cost one comparison).
    const int threads = C >= EMB_THREADS ? EMB_THREADS : (C + 31) / 32 * 32;
    const unsigned gy = (unsigned)((C + threads - 1) / threads);
    const unsigned gx = (unsigned)(T < 1024 ? T : 1024);
    if (gy > 65535) {
        fprintf(stderr, "rlc_cuda_embedding_backward: C=%d is too wide\n", C);
        return -1;
    }
    RLC_LAUNCH(emb_group_sum_kernel, dim3(gx, gy), threads, 0, st, dwte, dout, tokens, (const int *)perm, T, C);
    return emb_launch_ok("rlc_cuda_embedding_backward (sum)");
}
