// kernels/cuda/ops_cuda.cu: the CUDA backend's op table (rlc_ops_cuda; interface: ops_cuda.h, shapes and
// semantics: include/rlc/ops.h). Owns the backend state (cuBLAS handle, stream, growable workspace, precision
// mode), device memory management with checked and counted allocation (in use, peak, the optional cap), the
// matmuls (rlc_blas.h) and the adapters that run the bf16 attention and log-prob kernels on the table's
// activations. The kernels themselves live by family in elementwise.cu (also the KV-cache append), embedding.cu,
// rmsnorm.cu, rope.cu, attention.cu, logprob.cu and sample.cu (token sampling: only the keys go up and the tokens,
// log-probs and entropies come down).
//
// Precision modes (ops_cuda.h): in mixed precision (the default) activations are bf16 and every kernel reads and
// writes them as they are; the fp32 modes keep fp32 activations and convert at the bf16 kernels' doors.
//
// Attention adapter: the kernels take bf16 q, k, v (and out, dout in the backward) with head dims 64 or 128 (HDp).
// Activations that are bf16 with HD = HDp are passed as they are; others are rounded to bf16 (or copied) into
// the workspace with the head dim zero-padded to HDp. Zero columns change no dot product, but the kernels scale
// scores by 1/sqrt(HDp), so q is multiplied by s = sqrt(HDp / HD) before rounding: scores, lse and out are those
// of head dim HD. In the backward the kernel's dq is the gradient with respect to s q, so dq = s dq_kernel;
// dk = dS^T (s q) / sqrt(HDp) = dS^T q / sqrt(HD) needs no correction. Decode of a bf16 cache with HD = HDp runs
// on the cache itself through the rows' slot and kv_len arrays (no copy, no synchronisation). Otherwise the
// arrays are downloaded (a synchronisation), each distinct slot's rows 0..max kv_len-1 are gathered into a
// compact bf16 cache (distinct slots, max kv_len, NKV, HDp) and the decode kernel runs on it with the rows
// remapped to the compact slots: the conversion touches only the cache rows that are read, once per slot even
// when several rows (a prompt's prefill) share a slot.
//
// bf16 working weights: register_params gives the backend the model's flat fp32 parameter buffer (the master
// copy); it allocates a bf16 copy of the whole buffer (2 bytes per parameter, counted in mem_info) and keeps it
// equal to round-to-nearest-even of the master: every table entry that writes into a registered range (upload,
// copy, zero, add, scale, adamw_update) converts the written range afterwards, adamw_multi writes both copies in
// one pass, params_written covers writes outside the table (NCCL), free unregisters. A weight operand that lies
// inside a registered buffer is read from the copy at the same offset: the bf16 matmuls (any mode but fp32)
// and the fused log-prob (always bf16) then convert only their activations. The results are bit for bit those of
// converting the weight on every call, since both round the same fp32 values to nearest even.
#include "ops_cuda.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

#include "attention.h"
#include "elementwise.h"
#include "embedding.h"
#include "logprob.h"
#include "rlc_blas.h"
#include "rlc_cuda.h"
#include "rmsnorm.h"
#include "rope.h"
#include "sample.h"
extern "C" {
#include "rlc/sample.h"
}

static_assert(sizeof(rlc_f) == sizeof(float), "the CUDA backend is fp32-only (rlc_f must be float)");

struct OpsCuda {
    int ready;
    cudaStream_t stream;
    rlc_blas *blas;
    char *ws;        // workspace (device), ws_bytes long
    size_t ws_bytes;
    size_t ws_request_max; // the largest request (rlc_ops_cuda_workspace_request_max)
    int prec;        // RLC_CUDA_FP32 / _BF16_GEMM / _MIXED (ops_cuda.h)
    int prec_ready;  // prec chosen (default / RLC_CUDA_PRECISION at the first start, or set_precision); kept by
                     // release, since activation buffers allocated under it stay valid
    std::vector<int> h_ints; // host staging: decode's slot / kv_len download and plan upload, sampling's results
    // pinned staging ring of small uploads (oc_upload): slot i is reused once its event says its copy is done
    struct Stage {
        void *host;       // OC_STAGE_BYTES of pinned host memory (NULL: not yet allocated, or refused)
        cudaEvent_t done; // recorded after the copy out of it
        int pending;      // a copy was enqueued from it
    };
    Stage stage[16];
    int stage_next;
    // memory accounting: every block this backend holds (alloc, try_alloc, the workspace) with its size
    std::unordered_map<void *, size_t> blocks;
    size_t in_use, peak;
    size_t limit;    // 0 = none (set_mem_limit, or RLC_MEM_LIMIT_MB read at the first allocation)
    int limit_ready;
    // bf16 working weights: registered fp32 buffers and their bf16 copies (a few: the policy, a reference model)
    struct Params {
        const float *base;
        size_t n;
        void *bf16; // (n) __nv_bfloat16, device
    };
    std::vector<Params> params;
    // adamw_multi's device table and the host table it was uploaded from (uploaded again only when that changes)
    std::vector<rlc_cuda_adamw_tensor> adamw_host;
    rlc_cuda_adamw_tensor *adamw_dev;
    size_t adamw_chunks;
    // the op profiler (rlc_ops_cuda_profile_*): per entry its calls and device milliseconds; events in flight
    struct ProfEntry {
        std::string name;
        long long calls;
        double ms, flops; // flops: the GEMM entries' multiply-adds x 2 (0 for the others)
    };
    struct ProfPending {
        int entry;
        cudaEvent_t a, b;
    };
    struct Prof {
        int on;          // the table's entries are the timed wrappers
        int env_ready;   // RLC_CUDA_PROFILE read
        std::vector<ProfEntry> entries;
        std::vector<ProfPending> pending;
        std::vector<cudaEvent_t> spare;
    } prof;
    // graphs (graph_begin .. graph_end, graph_launch): recording happens on cap_stream (the legacy stream, the
    // default compute stream, cannot record), with the compute stream swapped for it meanwhile
    struct Graphs {
        int mode;                 // 0 off, 1 on (once env_read)
        int env_read;             // RLC_CUDA_GRAPHS read
        cudaStream_t cap_stream;  // non-blocking: work elsewhere on the legacy stream cannot invalidate a recording
        cudaStream_t saved;       // the compute stream during a recording
        int recording;
        const char *broken;       // what, during this recording, needed the host (the recording is discarded)
        unsigned long long epoch; // bumped whenever a buffer a graph may use moves (workspace, precision, stream)
        int warned;
    } g;
};
static OpsCuda oc;
static rlc_ops oc_table;

// ---------------------------------------------------------------------------------------------- errors

__attribute__((noreturn, format(printf, 1, 2))) static void oc_fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "rlc: cuda backend: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(stderr);
    exit(1);
}

static void oc_check(cudaError_t e, const char *what) {
    if (e != cudaSuccess) oc_fatal("%s failed: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

// rc of a kernel-family function (0, or -1 after it printed why).
static void oc_ok(int rc, const char *op) {
    if (rc != 0) oc_fatal("%s failed (see the message above)", op);
}

// True while a graph is being recorded: the caller, which needs the host (a download, a synchronisation, a
// staged upload whose bytes would be read at replay time), must not run; the recording is marked broken (what)
// and graph_end discards it, so the caller of graph_end runs the calls directly.
static bool oc_recording_refuses(const char *what) {
    if (!oc.g.recording) return false;
    if (!oc.g.broken) oc.g.broken = what;
    return true;
}

// ---------------------------------------------------------------------------------------------- memory

static double oc_mib(size_t b) { return (double)b / (1024.0 * 1024.0); }

static size_t oc_limit_now(void) {
    if (!oc.limit_ready) {
        const char *e = getenv("RLC_MEM_LIMIT_MB");
        oc.limit = 0;
        if (e && *e) {
            char *end;
            double mb = strtod(e, &end);
            if (end == e || *end || !(mb > 0) || mb > 1e12)
                oc_fatal("RLC_MEM_LIMIT_MB=%s: expected a positive number of MiB (e.g. 512 or 0.5)", e);
            oc.limit = (size_t)(mb * 1024.0 * 1024.0);
        }
        oc.limit_ready = 1;
    }
    return oc.limit;
}

static void oc_set_mem_limit(size_t bytes) {
    oc.limit = bytes;
    oc.limit_ready = 1;
}

static void oc_mem_info(rlc_mem_info *mi) {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        (void)cudaGetLastError();
        free_b = total_b = 0;
    }
    mi->in_use = oc.in_use;
    mi->peak = oc.peak;
    mi->limit = oc_limit_now();
    mi->free = free_b;
    mi->total = total_b;
    if (mi->limit) {
        const size_t room = mi->limit > oc.in_use ? mi->limit - oc.in_use : 0;
        if (room < mi->free) mi->free = room;
        if (mi->limit < mi->total || !mi->total) mi->total = mi->limit;
    }
}

// cudaMalloc of max(bytes, 1), counted, or NULL (the error cleared) over the limit or when the device refuses.
static void *oc_try_malloc(size_t bytes) {
    if (oc.g.recording) oc_fatal("an allocation of %zu bytes while a graph is being recorded (allocate first)", bytes);
    const size_t lim = oc_limit_now(), b = bytes ? bytes : 1;
    if (lim && (b > lim || oc.in_use > lim - b)) return NULL;
    void *p = NULL;
    if (cudaMalloc(&p, b) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    oc.blocks[p] = b;
    oc.in_use += b;
    if (oc.in_use > oc.peak) oc.peak = oc.in_use;
    return p;
}

static void oc_dev_free(void *p, const char *what) {
    if (!p) return;
    auto it = oc.blocks.find(p);
    if (it != oc.blocks.end()) {
        oc.in_use -= it->second;
        oc.blocks.erase(it);
    }
    oc_check(cudaFree(p), what);
}

__attribute__((noreturn)) static void oc_oom(size_t bytes, const char *what) {
    rlc_mem_info mi;
    oc_mem_info(&mi);
    char lim[96] = "";
    if (mi.limit) snprintf(lim, sizeof lim, " (limit %zu bytes, %zu in use)", mi.limit, mi.in_use);
    if (mi.total)
        oc_fatal("out of device memory: %s of %zu bytes (%.1f MiB) failed; %zu bytes (%.1f MiB) free of %zu "
                 "(%.1f MiB)%s",
                 what, bytes, oc_mib(bytes), mi.free, oc_mib(mi.free), mi.total, oc_mib(mi.total), lim);
    oc_fatal("out of device memory: %s of %zu bytes (%.1f MiB) failed (free memory unknown)%s", what, bytes,
             oc_mib(bytes), lim);
}

static void *oc_try_alloc(size_t bytes) {
    void *p = oc_try_malloc(bytes);
    if (p && bytes) oc_check(cudaMemsetAsync(p, 0, bytes, oc.stream), "alloc: cudaMemsetAsync");
    return p;
}

static void *oc_alloc(size_t bytes) {
    void *p = oc_try_alloc(bytes);
    if (!p) oc_oom(bytes, "alloc");
    return p;
}

static void oc_free(void *p) {
    if (oc.g.recording) oc_fatal("free while a graph is being recorded");
    for (size_t i = 0; i < oc.params.size(); i++)
        if (oc.params[i].base == p) { // the master goes: its bf16 copy too (the address may be reused)
            oc.g.epoch++;
            oc_dev_free(oc.params[i].bf16, "free: cudaFree (bf16 weights)");
            oc.params.erase(oc.params.begin() + (long)i);
            break;
        }
    oc_dev_free(p, "free: cudaFree");
}

// ---------------------------------------------------------------------------------------------- bf16 weights

// The bf16 copy of [w, w + n) when that range lies inside a registered buffer, else NULL.
static const void *oc_params_bf16(const float *w, size_t n) {
    for (const OpsCuda::Params &r : oc.params)
        if (w >= r.base && w < r.base + r.n && n <= (size_t)(r.base + r.n - w))
            return (const char *)r.bf16 + (size_t)(w - r.base) * 2;
    return NULL;
}

// Bytes [dst, dst + bytes) were written: convert every registered element they overlap (a partial element too).
static void oc_params_sync(const void *dst, size_t bytes) {
    if (!bytes) return;
    const char *a = (const char *)dst, *b = a + bytes;
    for (const OpsCuda::Params &r : oc.params) {
        const char *ra = (const char *)r.base, *rb = (const char *)(r.base + r.n);
        if (b <= ra || a >= rb) continue;
        const size_t e0 = (size_t)((a > ra ? a : ra) - ra) / sizeof(float);
        const size_t e1 = ((size_t)((b < rb ? b : rb) - ra) + sizeof(float) - 1) / sizeof(float);
        oc_ok(rlc_cuda_f32_to_bf16_flat((char *)r.bf16 + e0 * 2, r.base + e0, e1 - e0, oc.stream),
              "bf16 weights refresh");
    }
}

static void oc_register_params(const rlc_f *params, size_t n) {
    for (const OpsCuda::Params &r : oc.params)
        if (r.base == params) {
            if (r.n != n) oc_fatal("register_params: buffer registered with %zu elements, now %zu", r.n, n);
            oc_params_sync(params, n * sizeof(float)); // again: refresh the whole copy
            return;
        }
    if (!n || oc_params_bf16(params, 1) || oc_params_bf16(params + n - 1, 1))
        oc_fatal("register_params: %zu elements (none, or overlapping a registered buffer)", n);
    void *b = oc_try_malloc(n * 2);
    if (!b) oc_oom(n * 2, "register_params: the bf16 copy of the weights");
    oc.params.push_back(OpsCuda::Params{params, n, b});
    oc_params_sync(params, n * sizeof(float));
}

static void oc_params_written(const rlc_f *p, size_t n) { oc_params_sync(p, n * sizeof(float)); }

// Small uploads (a decode step's tokens, positions, slots and lengths; sampling keys) go through a ring of pinned
// staging buffers and do not synchronise: the host copies src into the next slot, the device copies from there
// in stream order, and an event marks the slot free again (waited for only when the ring comes round while the
// device is that far behind). With a synchronisation per upload the device would idle while the host enqueues
// each decode step's kernels. Larger uploads (weights, checkpoints) copy from src and synchronise.
#define OC_STAGE_BYTES ((size_t)256 << 10)
static const int OC_STAGE_SLOTS = (int)(sizeof oc.stage / sizeof oc.stage[0]);

static bool oc_upload_staged(void *dst, const void *src_host, size_t bytes) {
    if (bytes > OC_STAGE_BYTES) return false;
    OpsCuda::Stage &st = oc.stage[oc.stage_next];
    if (!st.host) {
        if (cudaMallocHost(&st.host, OC_STAGE_BYTES) != cudaSuccess) { // pinned memory refused: the plain path
            (void)cudaGetLastError();
            st.host = NULL;
            return false;
        }
        oc_check(cudaEventCreateWithFlags(&st.done, cudaEventDisableTiming), "upload: cudaEventCreate");
    } else if (st.pending) {
        oc_check(cudaEventSynchronize(st.done), "upload: cudaEventSynchronize");
    }
    oc.stage_next = (oc.stage_next + 1) % OC_STAGE_SLOTS;
    memcpy(st.host, src_host, bytes);
    oc_check(cudaMemcpyAsync(dst, st.host, bytes, cudaMemcpyHostToDevice, oc.stream), "upload: cudaMemcpyAsync");
    oc_check(cudaEventRecord(st.done, oc.stream), "upload: cudaEventRecord");
    st.pending = 1;
    return true;
}

static void oc_stage_release(void) {
    for (OpsCuda::Stage &st : oc.stage) {
        if (!st.host) continue;
        oc_check(cudaEventSynchronize(st.done), "release: cudaEventSynchronize");
        cudaEventDestroy(st.done);
        cudaFreeHost(st.host);
        st = OpsCuda::Stage{NULL, NULL, 0};
    }
    oc.stage_next = 0;
}

static void oc_upload(void *dst, const void *src_host, size_t bytes) {
    if (!bytes || oc_recording_refuses("upload")) return;
    if (oc_upload_staged(dst, src_host, bytes)) {
        oc_params_sync(dst, bytes);
        return;
    }
    oc_check(cudaMemcpyAsync(dst, src_host, bytes, cudaMemcpyHostToDevice, oc.stream), "upload: cudaMemcpyAsync");
    oc_params_sync(dst, bytes);
    oc_check(cudaStreamSynchronize(oc.stream), "upload: cudaStreamSynchronize"); // the caller may reuse src
}

static void oc_download(void *dst_host, const void *src, size_t bytes) {
    if (!bytes) return;
    if (oc_recording_refuses("download")) { // the entries that read results on the host (sumsq, sample_tokens,
        memset(dst_host, 0, bytes);       // attention_decode's gather path) go on with zeros; their work is discarded
        return;
    }
    oc_check(cudaMemcpyAsync(dst_host, src, bytes, cudaMemcpyDeviceToHost, oc.stream), "download: cudaMemcpyAsync");
    oc_check(cudaStreamSynchronize(oc.stream), "download: cudaStreamSynchronize");
}

static void oc_zero(void *p, size_t bytes) {
    if (bytes) oc_check(cudaMemsetAsync(p, 0, bytes, oc.stream), "zero: cudaMemsetAsync");
    oc_params_sync(p, bytes);
}

static void oc_copy(void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src) {
        oc_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, oc.stream), "copy: cudaMemcpyAsync");
        oc_params_sync(dst, bytes);
    }
}

// ---------------------------------------------------------------------------------------------- workspace
// One growable device buffer shared by every entry (stream order makes reuse safe). Growth is by at least
// 1.5x, rounded to 1 MiB, so that needs that creep up (decode's kv_len) do not reallocate each call.

static size_t oc_al(size_t b) { return (b + 255) & ~(size_t)255; }

static char *oc_workspace(size_t bytes) {
    if (bytes > oc.ws_request_max) oc.ws_request_max = bytes;
    if (bytes <= oc.ws_bytes) return oc.ws;
    // Growing synchronises and moves the buffer. A recording discards itself instead (nothing it holds runs, so
    // the small buffer is never written past its end); callers record only what ran the same way just before.
    if (oc.ws && oc_recording_refuses("the workspace had to grow")) return oc.ws;
    oc.g.epoch++;
    oc_check(cudaStreamSynchronize(oc.stream), "workspace: cudaStreamSynchronize"); // kernels may still read it
    const size_t grown = oc.ws_bytes + oc.ws_bytes / 2;
    oc_dev_free(oc.ws, "workspace: cudaFree");
    oc.ws = NULL;
    oc.ws_bytes = 0;
    size_t want = bytes > grown ? bytes : grown;
    want = (want + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
    char *p = (char *)oc_try_malloc(want);
    if (!p && want > bytes) p = (char *)oc_try_malloc(want = bytes); // the margin does not fit: exactly
    if (!p) oc_oom(bytes, "workspace");
    oc.ws = p;
    oc.ws_bytes = want;
    return p;
}

// Carves 256-byte aligned pieces off a workspace: sizes first (base NULL), then the real pointers.
struct OcCarve {
    char *base;
    size_t off;
    void *take(size_t bytes) {
        void *p = base ? base + off : NULL;
        off += oc_al(bytes);
        return p;
    }
};

// ---------------------------------------------------------------------------------------------- elementwise

// Mixed precision: activations are bf16 (rlc_act of ops.h).
static int oc_a16(void) { return oc.prec == RLC_CUDA_MIXED; }

static void oc_act_from_f(rlc_act *dst, const rlc_f *src, size_t n) {
    if (oc_a16()) oc_ok(rlc_cuda_f32_to_bf16_flat(dst, src, n, oc.stream), "act_from_f");
    else oc_copy(dst, src, n * sizeof(float));
}
static void oc_act_to_f(rlc_f *dst, const rlc_act *src, size_t n) {
    if (oc_a16()) oc_ok(rlc_cuda_bf16_to_f32_flat(dst, src, n, oc.stream), "act_to_f");
    else oc_copy(dst, src, n * sizeof(float));
}

static void oc_add(rlc_f *out, const rlc_f *a, const rlc_act *b, size_t n) {
    oc_ok(rlc_cuda_add(out, a, b, oc_a16(), n, oc.stream), "add");
    oc_params_sync(out, n * sizeof(float));
}
static void oc_scale(rlc_f *x, rlc_f s, size_t n) {
    oc_ok(rlc_cuda_scale(x, s, n, oc.stream), "scale");
    oc_params_sync(x, n * sizeof(float));
}

static double oc_sumsq(const rlc_f *x, size_t n) {
    const size_t pb = rlc_cuda_sumsq_workspace_bytes(n);
    char *ws = oc_workspace(oc_al(pb) + oc_al(sizeof(double)));
    double *res = (double *)(ws + oc_al(pb));
    oc_ok(rlc_cuda_sumsq(res, x, n, ws, oc.stream), "sumsq");
    double r = 0.0;
    oc_download(&r, res, sizeof r);
    return r;
}

static void oc_swiglu_forward(rlc_act *out, const rlc_act *gate, const rlc_act *up, size_t n) {
    oc_ok(rlc_cuda_swiglu_forward(out, gate, up, oc_a16(), n, oc.stream), "swiglu_forward");
}
static void oc_swiglu_backward(rlc_act *dgate, rlc_act *dup, const rlc_act *dout, const rlc_act *gate,
                               const rlc_act *up, size_t n) {
    oc_ok(rlc_cuda_swiglu_backward(dgate, dup, dout, gate, up, oc_a16(), n, oc.stream), "swiglu_backward");
}

static void oc_adamw_update(rlc_f *p, const rlc_f *g, rlc_f *m, rlc_f *v, size_t n, float lr, float b1, float b2,
                            float eps, float wd, float grad_scale, int t) {
    if (t < 1) oc_fatal("adamw_update: step %d (must be >= 1)", t);
    oc_ok(rlc_cuda_adamw(p, g, m, v, n, lr, b1, b2, eps, wd, grad_scale, t, oc.stream), "adamw_update");
    oc_params_sync(p, n * sizeof(float));
}

static void oc_adamw_multi(rlc_f *p, const rlc_f *g, rlc_f *m, rlc_f *v, const rlc_adamw_tensor *tensors,
                           int n_tensors, float lr, float b1, float b2, float eps, float grad_scale, int t) {
    if (t < 1) oc_fatal("adamw_multi: step %d (must be >= 1)", t);
    if (n_tensors <= 0 || oc_recording_refuses("adamw_multi (it may upload its table)")) return;
    std::vector<rlc_cuda_adamw_tensor> tab((size_t)n_tensors);
    size_t end = 0; // one past the last element any tensor touches
    for (int i = 0; i < n_tensors; i++) {
        tab[i] = rlc_cuda_adamw_tensor{tensors[i].offset, tensors[i].numel, 0, tensors[i].wd};
        if (tensors[i].offset + tensors[i].numel > end) end = tensors[i].offset + tensors[i].numel;
    }
    const size_t chunks = rlc_cuda_adamw_multi_plan(tab.data(), n_tensors);
    bool same = tab.size() == oc.adamw_host.size(); // field by field (memcmp would read the struct's padding)
    for (size_t i = 0; same && i < tab.size(); i++) {
        const rlc_cuda_adamw_tensor &x = tab[i], &y = oc.adamw_host[i];
        same = x.offset == y.offset && x.numel == y.numel && x.chunk0 == y.chunk0 && x.wd == y.wd;
    }
    if (!same) { // a new model (or the first step): upload the table once
        oc_check(cudaStreamSynchronize(oc.stream), "adamw_multi: cudaStreamSynchronize"); // the old one may be in use
        oc_dev_free(oc.adamw_dev, "adamw_multi: cudaFree");
        const size_t bytes = tab.size() * sizeof(rlc_cuda_adamw_tensor);
        oc.adamw_dev = (rlc_cuda_adamw_tensor *)oc_try_malloc(bytes);
        if (!oc.adamw_dev) oc_oom(bytes, "adamw_multi: the tensor table");
        oc_check(cudaMemcpyAsync(oc.adamw_dev, tab.data(), bytes, cudaMemcpyHostToDevice, oc.stream),
                 "adamw_multi: cudaMemcpyAsync");
        oc_check(cudaStreamSynchronize(oc.stream), "adamw_multi: cudaStreamSynchronize");
        oc.adamw_host.swap(tab);
        oc.adamw_chunks = chunks;
    }
    // the bf16 copy is written in the same pass when every touched element lies in one registered buffer
    void *pb = end ? (void *)oc_params_bf16(p, end) : NULL;
    oc_ok(rlc_cuda_adamw_multi(p, pb, g, m, v, oc.adamw_dev, n_tensors, oc.adamw_chunks, lr, b1, b2, eps, grad_scale,
                               t, oc.stream),
          "adamw_multi");
    if (!pb) oc_params_sync(p, end * sizeof(float)); // p overlaps a buffer only partly (not the model's layout)
}

// ---------------------------------------------------------------------------------------------- embedding

static void oc_embedding_forward(rlc_f *out, const int *tokens, const rlc_f *wte, int T, int C) {
    oc_ok(rlc_cuda_embedding_forward(out, tokens, wte, T, C, oc.stream), "embedding_forward");
}

static void oc_embedding_backward(rlc_f *dwte, const rlc_f *dout, const int *tokens, int T, int C) {
    if (T <= 0 || C <= 0) return;
    char *ws = oc_workspace(rlc_cuda_embedding_backward_workspace_bytes(T));
    oc_ok(rlc_cuda_embedding_backward(dwte, dout, tokens, T, C, ws, oc.stream), "embedding_backward");
}

// ---------------------------------------------------------------------------------------------- matmul

static void oc_blas(int rc, const char *op) {
    if (rc != 0) oc_fatal("%s: GEMM failed (see the message above)", op);
}

// The bf16 form of a GEMM operand x (rows, cols): x itself when it is a bf16 activation (mixed precision), the
// bf16 working copy when it lies in a registered weight buffer, else a copy converted into the carve. The carve
// is walked twice (sizes with a NULL base, then the pointers): the conversion runs on the second walk only.
static const void *oc_gemm_operand(OcCarve &cv, const void *x, bool is_act, size_t rows, int cols, const char *op) {
    if (is_act && oc_a16()) return x;
    if (!is_act) {
        const void *wb = oc_params_bf16((const float *)x, rows * (size_t)cols);
        if (wb) return wb;
    }
    void *d = cv.take(rows * cols * 2);
    if (d) oc_ok(rlc_cuda_f32_to_bf16(d, (const float *)x, rows, cols, cols, 1.0f, oc.stream), op);
    return d;
}

// out (T,OC) = inp (T,C) @ w (OC,C)^T + bias: out an activation (out_act: bf16 in mixed precision) or fp32.
static void oc_gemm_forward(void *out, bool out_act, const rlc_act *inp, const rlc_f *w, const rlc_f *bias, int T,
                            int C, int OC, const char *op) {
    if (T <= 0 || OC <= 0) return;
    const bool out16 = out_act && oc_a16();
    const size_t n_out = (size_t)T * OC;
    if (oc.prec == RLC_CUDA_FP32) {
        float beta = 0.0f;
        if (bias) {
            oc_ok(rlc_cuda_bias_rows((float *)out, bias, T, OC, oc.stream), op);
            beta = 1.0f;
        }
        if (C <= 0) {
            if (!bias) oc_zero(out, n_out * sizeof(float));
            return;
        }
        oc_blas(rlc_blas_sgemm(oc.blas, 0, 1, T, OC, C, 1.0f, (const float *)inp, C, w, C, beta, (float *)out, OC),
                op);
        return;
    }
    // bf16 GEMMs. A bf16 output with a bias that has a bf16 working copy (a model's bias) takes the GEMM's bias
    // epilogue (one rounding, no scratch); otherwise a bf16 output with a bias goes through an fp32 scratch (the
    // products, then the bias added and rounded once), so that neither is rounded separately.
    const void *bias16 = out16 && bias && C > 0 ? oc_params_bf16(bias, (size_t)OC) : NULL;
    OcCarve cv = {NULL, 0};
    for (int pass = 0; pass < 2; pass++) {
        if (pass) cv = OcCarve{oc_workspace(cv.off), 0};
        const void *a = C > 0 ? oc_gemm_operand(cv, inp, true, (size_t)T, C, op) : NULL;
        const void *b = C > 0 ? oc_gemm_operand(cv, w, false, (size_t)OC, C, op) : NULL;
        float *acc = out16 && bias ? (float *)cv.take(n_out * sizeof(float)) : NULL; // (T, OC) scratch
        if (!pass) continue;
        if (!out16) { // fp32 output: the bias rows, then the products added
            if (bias) oc_ok(rlc_cuda_bias_rows((float *)out, bias, T, OC, oc.stream), op);
            if (C > 0)
                oc_blas(rlc_blas_gemm_bf16(oc.blas, 0, 1, T, OC, C, 1.0f, a, C, b, C, bias ? 1.0f : 0.0f, out, OC, 0),
                        op);
            else if (!bias) oc_zero(out, n_out * sizeof(float));
            return;
        }
        if (!bias) { // bf16 output, no bias: the GEMM rounds its fp32 sums once
            if (C > 0) oc_blas(rlc_blas_gemm_bf16(oc.blas, 0, 1, T, OC, C, 1.0f, a, C, b, C, 0.0f, out, OC, 1), op);
            else oc_zero(out, n_out * 2);
            return;
        }
        if (bias16) {
            const int r = rlc_blas_gemm_bf16_bias(oc.blas, 0, 1, T, OC, C, 1.0f, a, C, b, C, bias16, out, OC);
            if (r < 0) oc_fatal("%s: GEMM failed (see the message above)", op);
            if (r == 0) return; // 1: no epilogue in this build, the scratch path below
        }
        if (C > 0) oc_blas(rlc_blas_gemm_bf16(oc.blas, 0, 1, T, OC, C, 1.0f, a, C, b, C, 0.0f, acc, OC, 0), op);
        else oc_zero(acc, n_out * sizeof(float));
        oc_ok(rlc_cuda_bias_round_bf16(out, acc, bias, T, OC, oc.stream), op);
    }
}

static void oc_matmul_forward(rlc_act *out, const rlc_act *inp, const rlc_f *w, const rlc_f *bias, int T, int C,
                              int OC) {
    oc_gemm_forward(out, true, inp, w, bias, T, C, OC, "matmul_forward");
}

static void oc_logits_forward(rlc_f *out, const rlc_act *inp, const rlc_f *w, const rlc_f *bias, int T, int C,
                              int OC) {
    oc_gemm_forward(out, false, inp, w, bias, T, C, OC, "logits_forward");
}

static void oc_matmul_backward(rlc_act *dinp, rlc_f *dw, rlc_f *dbias, const rlc_act *dout, const rlc_act *inp,
                               const rlc_f *w, int T, int C, int OC) {
    const char *op = "matmul_backward";
    if (T <= 0 || OC <= 0) return; // no tokens or no outputs: nothing to add
    if (dbias) {
        char *ws = oc_workspace(rlc_cuda_colsum_workspace_bytes(T, OC));
        oc_ok(rlc_cuda_colsum_add(dbias, dout, oc_a16(), T, OC, ws, oc.stream), "matmul_backward (dbias)");
    }
    if (C <= 0 || (!dinp && !dw)) return;
    if (oc.prec == RLC_CUDA_FP32) {
        // dinp (T,C) += dout (T,OC) @ w (OC,C);  dw (OC,C) += dout^T (OC,T) @ inp (T,C)
        const float *g = (const float *)dout;
        if (dinp)
            oc_blas(rlc_blas_sgemm(oc.blas, 0, 0, T, C, OC, 1.0f, g, OC, w, C, 1.0f, (float *)dinp, C),
                    "matmul_backward (dinp)");
        if (dw)
            oc_blas(rlc_blas_sgemm(oc.blas, 1, 0, OC, C, T, 1.0f, g, OC, (const float *)inp, C, 1.0f, dw, C),
                    "matmul_backward (dw)");
        return;
    }
    OcCarve cv = {NULL, 0};
    for (int pass = 0; pass < 2; pass++) {
        if (pass) cv = OcCarve{oc_workspace(cv.off), 0};
        const void *g = oc_gemm_operand(cv, dout, true, (size_t)T, OC, op);
        const void *wb = dinp ? oc_gemm_operand(cv, w, false, (size_t)OC, C, op) : NULL;
        const void *xb = dw ? oc_gemm_operand(cv, inp, true, (size_t)T, C, op) : NULL;
        if (!pass) continue;
        if (dinp)
            oc_blas(rlc_blas_gemm_bf16(oc.blas, 0, 0, T, C, OC, 1.0f, g, OC, wb, C, 1.0f, dinp, C, oc_a16()),
                    "matmul_backward (dinp)");
        if (dw)
            oc_blas(rlc_blas_gemm_bf16(oc.blas, 1, 0, OC, C, T, 1.0f, g, OC, xb, C, 1.0f, dw, C, 0),
                    "matmul_backward (dw)");
    }
}

// ---------------------------------------------------------------------------------------------- RMSNorm, RoPE

static void oc_rmsnorm_forward(rlc_act *out, rlc_f *rstd, const rlc_f *inp, const rlc_f *weight, float eps, int T,
                               int C) {
    oc_ok(rlc_cuda_rmsnorm_forward(out, oc_a16(), rstd, inp, weight, eps, T, C, oc.stream), "rmsnorm_forward");
}

static void oc_rmsnorm_backward(rlc_f *dinp, rlc_f *dweight, const rlc_act *dout, const rlc_f *inp,
                                const rlc_f *weight, const rlc_f *rstd, int T, int C) {
    if (T <= 0 || C <= 0) return;
    char *ws = oc_workspace(rlc_cuda_rmsnorm_backward_workspace_bytes(T, C));
    oc_ok(rlc_cuda_rmsnorm_backward(dinp, dweight, dout, oc_a16(), inp, weight, rstd, T, C, ws, oc.stream),
          "rmsnorm_backward");
}

static void oc_add_rmsnorm_forward(rlc_f *x, rlc_act *out, rlc_f *rstd, const rlc_f *a, const rlc_act *b,
                                   const rlc_f *weight, float eps, int T, int C) {
    oc_ok(rlc_cuda_add_rmsnorm_forward(x, out, oc_a16(), rstd, a, b, weight, eps, T, C, oc.stream),
          "add_rmsnorm_forward");
}

static void oc_rope_forward(rlc_act *x, const int *pos, int T, int H, int HD, float theta) {
    oc_ok(rlc_cuda_rope(x, oc_a16(), pos, T, H, HD, theta, 1, oc.stream), "rope_forward");
}
static void oc_rope_backward(rlc_act *dx, const int *pos, int T, int H, int HD, float theta) {
    oc_ok(rlc_cuda_rope(dx, oc_a16(), pos, T, H, HD, theta, -1, oc.stream), "rope_backward");
}

// ---------------------------------------------------------------------------------------------- attention

// Padded head dim of the bf16 kernels, and the shape checks they would refuse with a less specific message.
static int oc_att_hdp(const char *op, int NH, int NKV, int HD) {
    if (HD < 1 || HD > 128) oc_fatal("%s: head dim %d (the CUDA attention kernels take head dims 1..128)", op, HD);
    if (NH < 1 || NKV < 1 || NH % NKV != 0) oc_fatal("%s: NH=%d not a positive multiple of NKV=%d", op, NH, NKV);
    return HD <= 64 ? 64 : 128;
}
static float oc_att_qscale(int HD, int HDp) { return (float)sqrt((double)HDp / (double)HD); }

// The attention kernels' bf16 (rows, HDp) form of an activation x (rows, HD) times scale: x itself when it is
// bf16 already (mixed precision) and needs neither padding nor scaling, else a copy converted into the carve (on
// the carve's second walk).
static const void *oc_att_in(OcCarve &cv, const void *x, size_t rows, int HD, int HDp, float scale, const char *op) {
    if (oc_a16() && HD == HDp && scale == 1.0f) return x;
    void *d = cv.take(rows * HDp * 2);
    if (d) {
        if (oc_a16()) oc_ok(rlc_cuda_bf16_pad(d, x, rows, HD, HDp, scale, oc.stream), op);
        else oc_ok(rlc_cuda_f32_to_bf16(d, (const float *)x, rows, HD, HDp, scale, oc.stream), op);
    }
    return d;
}

// Where a kernel writes a bf16 (rows, HDp) result bound for the activation y (rows, HD): y itself when it is bf16
// with HD == HDp, else a carve buffer that oc_att_out_finish copies into y.
static void *oc_att_out(OcCarve &cv, void *y, size_t rows, int HD, int HDp) {
    if (oc_a16() && HD == HDp) return y;
    return cv.take(rows * HDp * 2);
}
static void oc_att_out_finish(void *y, const void *kb, size_t rows, int HD, int HDp, const char *op) {
    if (kb == y) return;
    if (oc_a16()) oc_ok(rlc_cuda_bf16_unpad(y, kb, rows, HD, HDp, oc.stream), op);
    else oc_ok(rlc_cuda_bf16_to_f32((float *)y, kb, rows, HD, HDp, 1.0f, oc.stream), op);
}

static void oc_attention_forward(rlc_act *out, rlc_f *lse, const rlc_act *q, const rlc_act *k, const rlc_act *v,
                                 const int *cu_seqlens, int B, int T, int NH, int NKV, int HD) {
    const char *op = "attention_forward";
    const int HDp = oc_att_hdp(op, NH, NKV, HD);
    if (T <= 0) return;
    const size_t nq = (size_t)T * NH, nk = (size_t)T * NKV; // rows of HDp
    OcCarve cv = {NULL, 0};
    for (int pass = 0; pass < 2; pass++) {
        if (pass) cv = OcCarve{oc_workspace(cv.off), 0};
        const void *qb = oc_att_in(cv, q, nq, HD, HDp, oc_att_qscale(HD, HDp), op);
        const void *kb = oc_att_in(cv, k, nk, HD, HDp, 1.0f, op), *vb = oc_att_in(cv, v, nk, HD, HDp, 1.0f, op);
        void *ob = oc_att_out(cv, out, nq, HD, HDp);
        if (!pass) continue;
        oc_ok(rlc_cuda_attention_forward(ob, lse, qb, kb, vb, cu_seqlens, B, T, NH, NKV, HDp, oc.stream), op);
        oc_att_out_finish(out, ob, nq, HD, HDp, op);
    }
}

static void oc_attention_backward(rlc_act *dq, rlc_act *dk, rlc_act *dv, const rlc_act *dout, const rlc_act *q,
                                  const rlc_act *k, const rlc_act *v, const rlc_act *out, const rlc_f *lse,
                                  const int *cu_seqlens, int B, int T, int NH, int NKV, int HD) {
    const char *op = "attention_backward";
    const int HDp = oc_att_hdp(op, NH, NKV, HD);
    if (T <= 0) return;
    const size_t nq = (size_t)T * NH, nk = (size_t)T * NKV;
    // the kernel writes fp32 gradients with HDp columns: straight into fp32 outputs of width HDp, else through a
    // scratch that is unpadded (and rounded to bf16 in mixed precision)
    const bool direct = !oc_a16() && HDp == HD;
    const size_t att_ws = rlc_cuda_attention_backward_workspace_bytes(T, NH);
    const float s = oc_att_qscale(HD, HDp);
    OcCarve cv = {NULL, 0};
    for (int pass = 0; pass < 2; pass++) {
        if (pass) cv = OcCarve{oc_workspace(cv.off), 0};
        const void *qb = oc_att_in(cv, q, nq, HD, HDp, s, op);
        const void *kb = oc_att_in(cv, k, nk, HD, HDp, 1.0f, op), *vb = oc_att_in(cv, v, nk, HD, HDp, 1.0f, op);
        const void *ob = oc_att_in(cv, out, nq, HD, HDp, 1.0f, op), *gb = oc_att_in(cv, dout, nq, HD, HDp, 1.0f, op);
        void *aws = cv.take(att_ws);
        float *dqp = direct ? (float *)dq : (float *)cv.take(nq * HDp * 4);
        float *dkp = direct ? (float *)dk : (float *)cv.take(nk * HDp * 4);
        float *dvp = direct ? (float *)dv : (float *)cv.take(nk * HDp * 4);
        if (!pass) continue;
        oc_ok(rlc_cuda_attention_backward(dqp, dkp, dvp, gb, qb, kb, vb, ob, lse, cu_seqlens, B, T, NH, NKV, HDp, aws,
                                          att_ws, oc.stream),
              op);
        if (!direct) {
            oc_ok(rlc_cuda_f32_unpad(dq, oc_a16(), dqp, nq, HD, HDp, s, oc.stream), op); // d/dq = s d/d(s q)
            oc_ok(rlc_cuda_f32_unpad(dk, oc_a16(), dkp, nk, HD, HDp, 1.0f, oc.stream), op);
            oc_ok(rlc_cuda_f32_unpad(dv, oc_a16(), dvp, nk, HD, HDp, 1.0f, oc.stream), op);
        }
    }
}

static void oc_attention_decode(rlc_act *out, const rlc_act *q, const rlc_act *k_cache, const rlc_act *v_cache,
                                const int *slot, const int *kv_len, int B, int cap, int NH, int NKV, int HD) {
    const char *op = "attention_decode";
    const int HDp = oc_att_hdp(op, NH, NKV, HD);
    if (B <= 0) return;
    if (oc_a16() && HD == HDp) {
        // bf16 cache in the kernel's layout: the kernel reads it through the rows' own slots, nothing is copied and
        // nothing synchronises (the caller has checked slot and kv_len on the host)
        const size_t dec_ws = rlc_cuda_attention_decode_workspace_bytes(B, cap, NH, NKV, HD, 0);
        oc_ok(rlc_cuda_attention_decode(out, q, k_cache, v_cache, slot, kv_len, B, cap, NH, NKV, HD, 0,
                                        oc_workspace(dec_ws), dec_ws, oc.stream),
              op);
        return;
    }
    // The rows' slots and lengths, on the host: which cache rows are read.
    std::vector<int> &h = oc.h_ints;
    h.resize((size_t)2 * B);
    int *h_slot = h.data(), *h_len = h.data() + B;
    oc_download(h_slot, slot, (size_t)B * sizeof(int));
    oc_download(h_len, kv_len, (size_t)B * sizeof(int));
    // plan (uploaded): remap (B) compact slot of each row, src_slot (U), len (U) rows to gather per compact slot
    std::vector<int> remap(B), src, len;
    std::unordered_map<int, int> seen;
    int max_len = 0;
    for (int b = 0; b < B; b++) {
        if (h_len[b] < 0 || h_len[b] > cap || h_slot[b] < 0)
            oc_fatal("%s: row %d has kv_len %d (cap %d), slot %d", op, b, h_len[b], cap, h_slot[b]);
        auto it = seen.find(h_slot[b]);
        int u;
        if (it == seen.end()) {
            u = (int)src.size();
            seen.emplace(h_slot[b], u);
            src.push_back(h_slot[b]);
            len.push_back(0);
        } else {
            u = it->second;
        }
        remap[b] = u;
        if (h_len[b] > len[u]) len[u] = h_len[b];
        if (h_len[b] > max_len) max_len = h_len[b];
    }
    const int U = (int)src.size(), dcap = max_len > 0 ? max_len : 1;
    if (U > 65535) oc_fatal("%s: %d distinct slots in one call (at most 65535)", op, U);
    std::vector<int> plan;
    plan.reserve((size_t)B + 2 * U);
    plan.insert(plan.end(), remap.begin(), remap.end());
    plan.insert(plan.end(), src.begin(), src.end());
    plan.insert(plan.end(), len.begin(), len.end());

    const size_t nq = (size_t)B * NH, ncache = (size_t)U * dcap * NKV;
    const size_t dec_ws = rlc_cuda_attention_decode_workspace_bytes(B, dcap, NH, NKV, HDp, 0);
    OcCarve cv = {NULL, 0};
    for (int pass = 0; pass < 2; pass++) {
        if (pass) cv = OcCarve{oc_workspace(cv.off), 0};
        int *d_plan = (int *)cv.take(plan.size() * sizeof(int));
        void *kb = cv.take(ncache * HDp * 2), *vb = cv.take(ncache * HDp * 2);
        const void *qb = oc_att_in(cv, q, nq, HD, HDp, oc_att_qscale(HD, HDp), op);
        void *ob = oc_att_out(cv, out, nq, HD, HDp);
        void *dws = cv.take(dec_ws);
        if (!pass) continue;
        oc_upload(d_plan, plan.data(), plan.size() * sizeof(int));
        const int *d_remap = d_plan, *d_src = d_plan + B, *d_len = d_plan + B + U;
        oc_ok(rlc_cuda_kv_gather_bf16(kb, k_cache, oc_a16(), d_src, d_len, U, cap, dcap, max_len, NKV, HD, HDp,
                                      oc.stream),
              op);
        oc_ok(rlc_cuda_kv_gather_bf16(vb, v_cache, oc_a16(), d_src, d_len, U, cap, dcap, max_len, NKV, HD, HDp,
                                      oc.stream),
              op);
        oc_ok(rlc_cuda_attention_decode(ob, qb, kb, vb, d_remap, kv_len, B, dcap, NH, NKV, HDp, 0, dws, dec_ws,
                                        oc.stream),
              op);
        oc_att_out_finish(out, ob, nq, HD, HDp, op);
    }
}

// Per row: the split partials of the kernel (their count is largest for one row) and, on the gather path, the row's
// share of the carve: its plan entries, the gathered bf16 K and V rows of up to cap positions, the bf16 query and
// output rows; plus each carve piece's 256-byte alignment.
static size_t oc_attention_decode_scratch(int cap, int NH, int NKV, int HD) {
    const int HDp = oc_att_hdp("attention_decode_scratch", NH, NKV, HD);
    const size_t part = rlc_cuda_attention_decode_workspace_bytes(1, cap > 0 ? cap : 1, NH, NKV, HDp, 0) + 256;
    if (oc_a16() && HD == HDp) return part;
    return part + 3 * sizeof(int) + 2 * (size_t)cap * NKV * HDp * 2 + 2 * (size_t)NH * HDp * 2 + 4 * 256;
}

static void oc_kv_append(rlc_act *k_cache, rlc_act *v_cache, const rlc_act *k_new, const rlc_act *v_new,
                         const int *slot, const int *pos, int n, int cap, int NKV, int HD) {
    oc_ok(rlc_cuda_kv_append(k_cache, v_cache, k_new, v_new, oc_a16(), slot, pos, n, cap, NKV, HD, oc.stream),
          "kv_append");
}

// ---------------------------------------------------------------------------------------------- sampling

// keys (n, 3 ints) up, the kernel, (tok, logp, ent) down in one copy each way: 24 n bytes over the bus.
static void oc_sample_tokens(int *tok, float *logp, float *ent, const rlc_f *logits, size_t ld, int n, int V,
                             const rlc_sampling *s, const rlc_sample_key *keys, uint64_t seed, uint64_t step) {
    static_assert(sizeof(rlc_sample_key) == 3 * sizeof(int), "rlc_sample_key is uploaded as (n, 3) ints");
    const char *op = "sample_tokens";
    if (n <= 0) return;
    if (V < 1) oc_fatal("%s: vocabulary of %d tokens", op, V);
    if (!s->greedy && !(s->temperature > 0.0f))
        oc_fatal("%s: temperature %g (must be > 0 unless greedy)", op, (double)s->temperature);
    const size_t nb = (size_t)n * sizeof(int);
    OcCarve cv = {NULL, 0};
    for (int pass = 0; pass < 2; pass++) {
        if (pass) cv = OcCarve{oc_workspace(cv.off), 0};
        int *d_keys = (int *)cv.take(3 * nb), *d_out = (int *)cv.take(3 * nb); // out: tok (n), logp (n), ent (n)
        if (!pass) continue;
        oc_upload(d_keys, keys, 3 * nb);
        oc_ok(rlc_cuda_sample_tokens(d_out, (float *)(d_out + n), (float *)(d_out + 2 * (size_t)n), logits, ld, n, V,
                                     s->temperature, s->top_k, s->top_p, s->greedy, d_keys, seed, step, oc.stream),
              op);
        std::vector<int> &h = oc.h_ints;
        h.resize((size_t)3 * n);
        oc_download(h.data(), d_out, 3 * nb);
        memcpy(tok, h.data(), nb);
        if (logp) memcpy(logp, h.data() + n, nb);
        if (ent) memcpy(ent, h.data() + 2 * (size_t)n, nb);
    }
}

// ---------------------------------------------------------------------------------------------- log-prob

// The log-prob kernels read bf16 hidden states: the activation itself in mixed precision, else a converted copy.
static void oc_logprob_forward(rlc_f *logp, rlc_f *entropy, rlc_f *lse, const rlc_act *hidden, const rlc_f *w,
                               const int *targets, int T, int C, int V, float tau) {
    const char *op = "logprob_forward";
    if (!(tau > 0)) oc_fatal("%s: temperature must be > 0 (got %g)", op, tau);
    if (T <= 0) return;
    if (C < 1 || V < 1) oc_fatal("%s: C=%d, V=%d (both must be >= 1)", op, C, V);
    const size_t lp_ws = rlc_cuda_logprob_workspace_bytes(T, V, 0, 0);
    OcCarve cv = {NULL, 0};
    for (int pass = 0; pass < 2; pass++) {
        if (pass) cv = OcCarve{oc_workspace(cv.off), 0};
        const void *hb = oc_gemm_operand(cv, hidden, true, (size_t)T, C, op);
        const void *wb = oc_gemm_operand(cv, w, false, (size_t)V, C, op); // the LM head's bf16 working copy
        void *lws = cv.take(lp_ws);
        float *lp = logp ? logp : (float *)cv.take((size_t)T * sizeof(float)); // logp NULL: a scratch
        if (!pass) continue;
        oc_ok(rlc_cuda_logprob_forward(oc.blas, lp, entropy, lse, hb, wb, targets, T, C, V, tau, 0, 0, lws, oc.stream),
              op);
    }
}

// In mixed precision the kernel accumulates dhidden over the vocabulary chunks in an fp32 scratch, added to the
// bf16 activation once (one rounding instead of one per chunk).
static void oc_logprob_backward(rlc_act *dhidden, rlc_f *dw, const rlc_f *dlogp, const rlc_f *dent,
                                const rlc_act *hidden, const rlc_f *w, const int *targets, const rlc_f *lse,
                                const rlc_f *entropy, int T, int C, int V, float tau) {
    const char *op = "logprob_backward";
    if (!(tau > 0)) oc_fatal("%s: temperature must be > 0 (got %g)", op, tau);
    if (T <= 0 || (!dhidden && !dw)) return;
    if (C < 1 || V < 1) oc_fatal("%s: C=%d, V=%d (both must be >= 1)", op, C, V);
    const size_t lp_ws = rlc_cuda_logprob_workspace_bytes(T, V, 0, 0), n_dh = (size_t)T * C;
    const bool dh32 = dhidden && oc_a16();
    OcCarve cv = {NULL, 0};
    for (int pass = 0; pass < 2; pass++) {
        if (pass) cv = OcCarve{oc_workspace(cv.off), 0};
        const void *hb = oc_gemm_operand(cv, hidden, true, (size_t)T, C, op);
        const void *wb = oc_gemm_operand(cv, w, false, (size_t)V, C, op);
        void *lws = cv.take(lp_ws);
        float *dh = dh32 ? (float *)cv.take(n_dh * sizeof(float)) : (float *)dhidden;
        if (!pass) continue;
        if (dh32) oc_check(cudaMemsetAsync(dh, 0, n_dh * sizeof(float), oc.stream), "logprob_backward: cudaMemsetAsync");
        oc_ok(rlc_cuda_logprob_backward(oc.blas, dh, dw, dlogp, dent, hb, wb, targets, lse, entropy, T, C, V, tau, 0,
                                        0, lws, oc.stream),
              op);
        if (dh32) oc_ok(rlc_cuda_add_into(dhidden, 1, dh, n_dh, oc.stream), op);
    }
}

// ---------------------------------------------------------------------------------------------- table, state

// ---------------------------------------------------------------------------------------------- profiler
// With the profiler on, each compute entry of the table is a wrapper that records an event on the backend's stream
// before and after the real entry, so that the device time between the two (its kernels and copies, not the
// gaps in which the device waited for the host) is added to the entry's total once the events have run. Pending
// pairs are collected when they pass 1024 (waiting for the oldest) and by report/reset. The wrappers cost two
// event records per call on the host: a launch-bound step runs slower with the profiler on.

static int oc_prof_register(const char *name) {
    for (size_t i = 0; i < oc.prof.entries.size(); i++)
        if (oc.prof.entries[i].name == name) return (int)i;
    oc.prof.entries.push_back({name, 0, 0.0, 0.0});
    return (int)oc.prof.entries.size() - 1;
}

static cudaEvent_t oc_prof_event() {
    if (!oc.prof.spare.empty()) {
        cudaEvent_t e = oc.prof.spare.back();
        oc.prof.spare.pop_back();
        return e;
    }
    cudaEvent_t e;
    oc_check(cudaEventCreate(&e), "profiler: cudaEventCreate");
    return e;
}

// Adds the pending pairs' times to their entries, oldest first; all of them (waiting) or only the oldest `keep`
// less (waiting for those).
static void oc_prof_collect(size_t keep) {
    auto &pd = oc.prof.pending;
    const size_t n = pd.size() > keep ? pd.size() - keep : 0;
    for (size_t i = 0; i < n; i++) {
        oc_check(cudaEventSynchronize(pd[i].b), "profiler: cudaEventSynchronize");
        float ms = 0.0f;
        oc_check(cudaEventElapsedTime(&ms, pd[i].a, pd[i].b), "profiler: cudaEventElapsedTime");
        oc.prof.entries[pd[i].entry].ms += ms;
        oc.prof.spare.push_back(pd[i].a);
        oc.prof.spare.push_back(pd[i].b);
    }
    pd.erase(pd.begin(), pd.begin() + n);
}

static void oc_prof_destroy_events() {
    oc_prof_collect(0);
    for (cudaEvent_t e : oc.prof.spare) cudaEventDestroy(e);
    oc.prof.spare.clear();
}

// Times one call of an entry (constructed before it, destroyed after it).
struct OcProfScope {
    int entry;
    cudaEvent_t a;
    explicit OcProfScope(int id) : entry(id), a(oc_prof_event()) {
        oc_check(cudaEventRecord(a, oc.stream), "profiler: cudaEventRecord");
    }
    ~OcProfScope() {
        cudaEvent_t b = oc_prof_event();
        oc_check(cudaEventRecord(b, oc.stream), "profiler: cudaEventRecord");
        oc.prof.entries[entry].calls++;
        oc.prof.pending.push_back({entry, a, b});
        if (oc.prof.pending.size() > 1024) oc_prof_collect(512);
    }
};

// The timed wrapper of entry F: the same signature, registered under the table field's name.
template <auto F> struct OcTimed;
template <typename R, typename... A, R (*F)(A...)> struct OcTimed<F> {
    static int id;
    static R call(A... args) {
        OcProfScope scope(id);
        return F(args...);
    }
};
template <typename R, typename... A, R (*F)(A...)> int OcTimed<F>::id = -1;

template <auto F> static auto oc_timed(const char *name) {
    OcTimed<F>::id = oc_prof_register(name);
    return &OcTimed<F>::call;
}

// The GEMM entries' timed wrappers count each weight shape (C -> OC) apart, with its FLOPs (forward 2 T C OC; the
// backward's dinp and dw twice that), so that the report gives each shape's TFLOP/s.
static int oc_prof_gemm(const char *entry, int T, int C, int OC, double gemms) {
    char name[64];
    snprintf(name, sizeof name, "%s %dx%d", entry, C, OC);
    const int id = oc_prof_register(name);
    oc.prof.entries[id].flops += gemms * 2.0 * T * (double)C * OC;
    return id;
}
static void oc_matmul_forward_timed(rlc_act *out, const rlc_act *inp, const rlc_f *w, const rlc_f *bias, int T, int C,
                                    int OC) {
    OcProfScope scope(oc_prof_gemm("matmul_forward", T, C, OC, 1.0));
    oc_matmul_forward(out, inp, w, bias, T, C, OC);
}
static void oc_logits_forward_timed(rlc_f *out, const rlc_act *inp, const rlc_f *w, const rlc_f *bias, int T, int C,
                                    int OC) {
    OcProfScope scope(oc_prof_gemm("logits_forward", T, C, OC, 1.0));
    oc_logits_forward(out, inp, w, bias, T, C, OC);
}
static void oc_matmul_backward_timed(rlc_act *dinp, rlc_f *dw, rlc_f *dbias, const rlc_act *dout, const rlc_act *inp,
                                     const rlc_f *w, int T, int C, int OC) {
    OcProfScope scope(oc_prof_gemm("matmul_backward", T, C, OC, (dinp ? 1.0 : 0.0) + (dw ? 1.0 : 0.0)));
    oc_matmul_backward(dinp, dw, dbias, dout, inp, w, T, C, OC);
}

// ---------------------------------------------------------------------------------------------- graphs
// The decode step's calls recorded once and replayed (include/rlc/ops.h, graph_*). A recording runs on its own
// non-blocking stream: the legacy default stream (the compute stream unless set_stream changed it) cannot be
// recorded. Errors of the graph API itself (a driver that refuses a recording or an instantiation) turn graphs off
// for the process with one line on stderr: the calls then run directly, as with RLC_CUDA_GRAPHS=0.

struct OcGraph {
    cudaGraphExec_t exec;
    unsigned long long epoch; // oc.g.epoch at recording
    size_t nodes;
};

static bool oc_graphs_on(void) {
    if (!oc.g.env_read) {
        oc.g.env_read = 1;
        const char *e = getenv("RLC_CUDA_GRAPHS");
        if (e && *e && strcmp(e, "0") && strcmp(e, "1"))
            oc_fatal("RLC_CUDA_GRAPHS=%s: expected 0 (decode steps run their launches directly) or 1 (recorded and "
                     "replayed as CUDA graphs, the default)", e);
        oc.g.mode = !(e && !strcmp(e, "0"));
    }
    return oc.g.mode == 1;
}

static void oc_graphs_fail(const char *what, cudaError_t e) {
    (void)cudaGetLastError();
    oc.g.mode = 0;
    if (!oc.g.warned)
        fprintf(stderr, "rlc: cuda backend: %s failed (%s); CUDA graphs are off for this process\n", what,
                cudaGetErrorString(e));
    oc.g.warned = 1;
}

static int oc_graph_begin(void) {
    if (!oc_graphs_on() || oc.prof.on || oc.g.recording) return -1;
    cudaError_t e;
    if (!oc.g.cap_stream && (e = cudaStreamCreateWithFlags(&oc.g.cap_stream, cudaStreamNonBlocking)) != cudaSuccess) {
        oc.g.cap_stream = NULL;
        oc_graphs_fail("cudaStreamCreateWithFlags (the recording stream)", e);
        return -1;
    }
    if ((e = cudaStreamBeginCapture(oc.g.cap_stream, cudaStreamCaptureModeThreadLocal)) != cudaSuccess) {
        oc_graphs_fail("cudaStreamBeginCapture", e);
        return -1;
    }
    oc.g.saved = oc.stream;
    oc.stream = oc.g.cap_stream;
    rlc_blas_set_stream(oc.blas, oc.stream);
    oc.g.recording = 1;
    oc.g.broken = NULL;
    return 0;
}

static void *oc_graph_end(void) {
    if (!oc.g.recording) oc_fatal("graph_end without graph_begin");
    cudaGraph_t graph = NULL;
    const cudaError_t e = cudaStreamEndCapture(oc.g.cap_stream, &graph);
    oc.g.recording = 0;
    oc.stream = oc.g.saved;
    rlc_blas_set_stream(oc.blas, oc.stream);
    if (oc.g.broken || e != cudaSuccess || !graph) {
        if (graph) cudaGraphDestroy(graph);
        if (e != cudaSuccess && !oc.g.broken) oc_graphs_fail("cudaStreamEndCapture", e);
        (void)cudaGetLastError(); // a refused call left its error behind
        return NULL;
    }
    size_t nodes = 0;
    if (cudaGraphGetNodes(graph, NULL, &nodes) != cudaSuccess) nodes = 0;
    cudaGraphExec_t exec;
    const cudaError_t ei = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (ei != cudaSuccess) {
        oc_graphs_fail("cudaGraphInstantiate", ei);
        return NULL;
    }
    return new OcGraph{exec, oc.g.epoch, nodes};
}

static int oc_graph_launch(void *graph) {
    OcGraph *g = (OcGraph *)graph;
    if (!g || g->epoch != oc.g.epoch || oc.prof.on || oc.g.recording) return -1;
    oc_check(cudaGraphLaunch(g->exec, oc.stream), "graph_launch: cudaGraphLaunch");
    return 0;
}

static void oc_graph_free(void *graph) {
    OcGraph *g = (OcGraph *)graph;
    if (!g) return;
    oc_check(cudaGraphExecDestroy(g->exec), "graph_free: cudaGraphExecDestroy");
    delete g;
}

extern "C" void rlc_ops_cuda_set_graphs(int on) {
    (void)oc_graphs_on(); // the environment is read first, so the call wins
    oc.g.mode = on != 0;
}

extern "C" int rlc_ops_cuda_graphs(void) { return oc_graphs_on() ? 1 : 0; }

extern "C" size_t rlc_ops_cuda_graph_nodes(const void *graph) { return graph ? ((const OcGraph *)graph)->nodes : 0; }

// Fills the table: the real entries, or for the compute ones their timed wrappers when the profiler is on.
// (Memory management and set-up entries are never wrapped.)
#define OC_ENTRY(field, fn) t.field = oc.prof.on ? oc_timed<fn>(#field) : fn
static void oc_fill_table(void) {
    rlc_ops &t = oc_table;
    t.name = "cuda";
    t.act_bytes = oc_a16() ? 2 : sizeof(float);
    t.alloc = oc_alloc;
    t.try_alloc = oc_try_alloc;
    t.free = oc_free;
    t.mem_info = oc_mem_info;
    t.set_mem_limit = oc_set_mem_limit;
    t.attention_decode_scratch = oc_attention_decode_scratch;
    t.register_params = oc_register_params;
    OC_ENTRY(upload, oc_upload);
    OC_ENTRY(download, oc_download);
    OC_ENTRY(zero, oc_zero);
    OC_ENTRY(copy, oc_copy);
    OC_ENTRY(act_from_f, oc_act_from_f);
    OC_ENTRY(act_to_f, oc_act_to_f);
    OC_ENTRY(add, oc_add);
    OC_ENTRY(scale, oc_scale);
    OC_ENTRY(sumsq, oc_sumsq);
    OC_ENTRY(embedding_forward, oc_embedding_forward);
    OC_ENTRY(embedding_backward, oc_embedding_backward);
    t.matmul_forward = oc.prof.on ? oc_matmul_forward_timed : oc_matmul_forward;
    t.logits_forward = oc.prof.on ? oc_logits_forward_timed : oc_logits_forward;
    t.matmul_backward = oc.prof.on ? oc_matmul_backward_timed : oc_matmul_backward;
    OC_ENTRY(rmsnorm_forward, oc_rmsnorm_forward);
    OC_ENTRY(rmsnorm_backward, oc_rmsnorm_backward);
    OC_ENTRY(add_rmsnorm_forward, oc_add_rmsnorm_forward);
    OC_ENTRY(rope_forward, oc_rope_forward);
    OC_ENTRY(rope_backward, oc_rope_backward);
    OC_ENTRY(attention_forward, oc_attention_forward);
    OC_ENTRY(attention_backward, oc_attention_backward);
    OC_ENTRY(attention_decode, oc_attention_decode);
    OC_ENTRY(kv_append, oc_kv_append);
    OC_ENTRY(swiglu_forward, oc_swiglu_forward);
    OC_ENTRY(swiglu_backward, oc_swiglu_backward);
    OC_ENTRY(logprob_forward, oc_logprob_forward);
    OC_ENTRY(logprob_backward, oc_logprob_backward);
    OC_ENTRY(sample_tokens, oc_sample_tokens);
    OC_ENTRY(adamw_update, oc_adamw_update);
    OC_ENTRY(params_written, oc_params_written);
    OC_ENTRY(adamw_multi, oc_adamw_multi);
    t.graph_begin = oc_graph_begin;
    t.graph_end = oc_graph_end;
    t.graph_launch = oc_graph_launch;
    t.graph_free = oc_graph_free;
}
#undef OC_ENTRY

extern "C" void rlc_ops_cuda_profile_report(FILE *f, const char *title);

static void oc_init(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n < 1)
        oc_fatal("no usable CUDA device (%s)", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    oc_check(cudaFree(0), "context creation (cudaFree(0))");
    oc.blas = rlc_blas_create();
    if (!oc.blas) oc_fatal("cuBLAS handle creation failed (see the message above)");
    rlc_blas_set_stream(oc.blas, oc.stream);
    if (!oc.prec_ready) { // the first start only: a restart after release keeps the mode the buffers were made in
        oc.prec = RLC_CUDA_MIXED;
        const char *pr = getenv("RLC_CUDA_PRECISION");
        if (pr && *pr) {
            int found = 0;
            for (int m = RLC_CUDA_FP32; m <= RLC_CUDA_MIXED; m++)
                if (!strcmp(pr, rlc_ops_cuda_precision_name(m))) {
                    oc.prec = m;
                    found = 1;
                }
            if (!found) oc_fatal("RLC_CUDA_PRECISION=%s: expected mixed, bf16-gemm or fp32", pr);
        }
        oc.prec_ready = 1;
    }

    if (!oc.prof.env_ready) {
        const char *pe = getenv("RLC_CUDA_PROFILE");
        oc.prof.on = pe && *pe && strcmp(pe, "0") != 0;
        oc.prof.env_ready = 1;
        // the whole run's table on stderr at exit (registered after the CUDA runtime's start, so it runs first)
        if (oc.prof.on)
            atexit([] {
                long long calls = 0;
                for (const auto &e : oc.prof.entries) calls += e.calls;
                if (calls) rlc_ops_cuda_profile_report(stderr, "the whole run (RLC_CUDA_PROFILE)");
            });
    }
    oc_fill_table();
    oc.ready = 1;
}

extern "C" const rlc_ops *rlc_ops_cuda(void) {
    if (!oc.ready) oc_init();
    return &oc_table;
}

extern "C" void rlc_ops_cuda_set_stream(void *stream) {
    if (oc.g.recording) oc_fatal("set_stream while a graph is being recorded");
    if (oc.ready) oc_check(cudaStreamSynchronize(oc.stream), "set_stream: cudaStreamSynchronize");
    oc.g.epoch++;
    oc.stream = (cudaStream_t)stream;
    if (oc.blas) rlc_blas_set_stream(oc.blas, stream);
}

extern "C" void *rlc_ops_cuda_stream(void) { return (void *)oc.stream; }

extern "C" void rlc_ops_cuda_synchronize(void) {
    oc_check(cudaStreamSynchronize(oc.stream), "cudaStreamSynchronize");
    oc_check(cudaGetLastError(), "a kernel");
}

extern "C" const char *rlc_ops_cuda_precision_name(int mode) {
    return mode == RLC_CUDA_MIXED ? "mixed" : mode == RLC_CUDA_BF16_GEMM ? "bf16-gemm" : "fp32";
}

extern "C" void rlc_ops_cuda_set_precision(int mode) {
    if (mode != RLC_CUDA_FP32 && mode != RLC_CUDA_BF16_GEMM && mode != RLC_CUDA_MIXED)
        oc_fatal("set_precision: unknown mode %d", mode);
    if (!oc.ready) oc_init(); // so that the environment's mode, read there, does not override the call
    oc.prec = mode;
    oc.g.epoch++;
    oc_table.act_bytes = oc_a16() ? 2 : sizeof(float);
}

extern "C" int rlc_ops_cuda_precision(void) {
    if (!oc.ready) oc_init();
    return oc.prec;
}

extern "C" size_t rlc_ops_cuda_workspace_bytes(void) { return oc.ws_bytes; }
extern "C" size_t rlc_ops_cuda_workspace_request_max(int reset) {
    const size_t r = oc.ws_request_max;
    if (reset) oc.ws_request_max = 0;
    return r;
}

extern "C" const void *rlc_ops_cuda_params_bf16(const float *p, size_t n) { return oc_params_bf16(p, n); }

extern "C" double rlc_ops_cuda_gemm_bf16_tflops(int n, int reps) {
    if (!oc.ready) oc_init();
    if (n < 1 || reps < 1) oc_fatal("gemm_bf16_tflops: n=%d, reps=%d (both must be >= 1)", n, reps);
    const size_t nn = (size_t)n * n;
    void *a = oc_try_malloc(nn * 2), *b = oc_try_malloc(nn * 2), *c = oc_try_malloc(nn * sizeof(float));
    if (!a || !b || !c) oc_oom(nn * 8, "gemm_bf16_tflops: operands");
    // 0x3C3C is the bf16 0.0115 (a normal number): no denormals or infinities in the products or the sums
    oc_check(cudaMemsetAsync(a, 0x3C, nn * 2, oc.stream), "gemm_bf16_tflops: cudaMemsetAsync");
    oc_check(cudaMemsetAsync(b, 0x3C, nn * 2, oc.stream), "gemm_bf16_tflops: cudaMemsetAsync");
    cudaEvent_t e0, e1;
    oc_check(cudaEventCreate(&e0), "cudaEventCreate");
    oc_check(cudaEventCreate(&e1), "cudaEventCreate");
    // one warm-up call (cuBLAS picks and loads its kernel), then reps calls between the events
    for (int r = 0; r <= reps; r++) {
        if (r == 1) oc_check(cudaEventRecord(e0, oc.stream), "cudaEventRecord");
        oc_blas(rlc_blas_gemm_bf16(oc.blas, 0, 1, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n, 0), "gemm_bf16_tflops");
    }
    oc_check(cudaEventRecord(e1, oc.stream), "cudaEventRecord");
    oc_check(cudaEventSynchronize(e1), "cudaEventSynchronize");
    float ms = 0;
    oc_check(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime");
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    oc_dev_free(a, "gemm_bf16_tflops: cudaFree");
    oc_dev_free(b, "gemm_bf16_tflops: cudaFree");
    oc_dev_free(c, "gemm_bf16_tflops: cudaFree");
    const double s = (ms > 0 ? ms : 1e-6) * 1e-3;
    return 2.0 * (double)n * n * n * reps / s / 1e12;
}

extern "C" void rlc_ops_cuda_profile_enable(int on) {
    if (!oc.ready) oc_init(); // the environment is read first, so that it cannot override this call later
    oc.prof.on = on != 0;
    oc_fill_table();
}

extern "C" void rlc_ops_cuda_profile_reset(void) {
    oc_prof_collect(0);
    for (auto &e : oc.prof.entries) e.calls = 0, e.ms = 0.0, e.flops = 0.0;
}

extern "C" int rlc_ops_cuda_profile_get(const char *entry, long long *calls, double *ms) {
    oc_prof_collect(0);
    for (const auto &e : oc.prof.entries)
        if (e.name == entry) {
            if (calls) *calls = e.calls;
            if (ms) *ms = e.ms;
            return 0;
        }
    return -1;
}

extern "C" void rlc_ops_cuda_profile_report(FILE *f, const char *title) {
    oc_prof_collect(0);
    std::vector<OpsCuda::ProfEntry> v;
    double total = 0.0;
    for (const auto &e : oc.prof.entries)
        if (e.calls > 0) {
            v.push_back(e);
            total += e.ms;
        }
    std::sort(v.begin(), v.end(), [](const OpsCuda::ProfEntry &x, const OpsCuda::ProfEntry &y) { return x.ms > y.ms; });
    fprintf(f, "op-table device time%s%s (rlc_ops_cuda_profile): %.3f ms in %zu entries\n", title ? ", " : "",
            title ? title : "", total, v.size());
    fprintf(f, "  %-30s %9s %11s %11s %7s %8s\n", "entry", "calls", "ms", "us/call", "share", "TFLOP/s");
    for (const auto &e : v) {
        char tf[16] = "";
        if (e.flops > 0 && e.ms > 0) snprintf(tf, sizeof tf, "%8.1f", e.flops / (e.ms * 1e-3) / 1e12);
        fprintf(f, "  %-30s %9lld %11.3f %11.2f %6.1f%% %8s\n", e.name.c_str(), e.calls, e.ms,
                1e3 * e.ms / (double)e.calls, total > 0 ? 100.0 * e.ms / total : 0.0, tf);
    }
    fflush(f);
}

extern "C" void rlc_ops_cuda_release(void) {
    if (!oc.ready) return;
    if (oc.g.recording) oc_fatal("release while a graph is being recorded");
    oc_check(cudaStreamSynchronize(oc.stream), "release: cudaStreamSynchronize");
    oc.g.epoch++; // graphs made before hold the old workspace and cuBLAS handle
    if (oc.g.cap_stream) cudaStreamDestroy(oc.g.cap_stream);
    oc.g.cap_stream = NULL;
    oc_prof_destroy_events(); // the counts stay
    oc_stage_release();
    oc_dev_free(oc.ws, "release: cudaFree");
    oc.ws = NULL;
    oc.ws_bytes = 0;
    oc_dev_free(oc.adamw_dev, "release: cudaFree");
    oc.adamw_dev = NULL;
    std::vector<rlc_cuda_adamw_tensor>().swap(oc.adamw_host);
    oc.adamw_chunks = 0;
    rlc_blas_destroy(oc.blas);
    oc.blas = NULL;
    oc.ready = 0;
    std::vector<int>().swap(oc.h_ints);
}
