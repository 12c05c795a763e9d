// host/backend.c: the config's "device" key -> an op table (see include/rlc/backend.h). Compiled into rlc_core
// without RLC_HAVE_CUDA (a CPU-only selection), and with RLC_HAVE_CUDA=1 into the rlc executable when CMake
// builds the CUDA library (cmake/cuda.cmake); both copies define the same symbols.
#include "rlc/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/comm.h"
#include "rlc/util.h"

#ifdef RLC_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "ops_cuda.h"

// Visible CUDA devices; 0 (and the reason in why) when the runtime finds none or no usable driver.
static int cuda_devices(const char **why) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        *why = cudaGetErrorString(e);
        (void)cudaGetLastError(); // clear it: a later CUDA call must not report this one
        return 0;
    }
    *why = n > 0 ? "" : "no device";
    return n;
}

static const rlc_ops *cuda_select(int local_rank, char *err, size_t errlen) {
    const char *why;
    int n = cuda_devices(&why);
    if (n <= 0) {
        rlc_errf(err, errlen, "device \"cuda\": no CUDA device is visible (%s); set device to \"cpu\" or \"auto\"", why);
        return NULL;
    }
    int dev = (local_rank > 0 ? local_rank : 0) % n;
    cudaError_t e = cudaSetDevice(dev);
    if (e != cudaSuccess) {
        rlc_errf(err, errlen, "device \"cuda\": cannot use GPU %d of %d: %s", dev, n, cudaGetErrorString(e));
        return NULL;
    }
    return rlc_ops_cuda();
}
#endif

const rlc_ops *rlc_backend_select(const char *device, int local_rank, char *err, size_t errlen) {
    if (strcmp(device, "cpu") == 0) return rlc_ops_cpu();
#ifdef RLC_HAVE_CUDA
    if (strcmp(device, "cuda") == 0) return cuda_select(local_rank, err, errlen);
    if (strcmp(device, "auto") == 0) {
        const char *why;
        return cuda_devices(&why) > 0 ? cuda_select(local_rank, err, errlen) : rlc_ops_cpu();
    }
#else
    (void)local_rank;
    if (strcmp(device, "cuda") == 0) {
        rlc_errf(err, errlen, "device \"cuda\" requested, but this rlc was built without the CUDA backend (CMake "
                              "found no nvcc, or RLC_CUDA=OFF); set device to \"cpu\" or \"auto\", or rebuild with "
                              "-DRLC_CUDA=ON");
        return NULL;
    }
    if (strcmp(device, "auto") == 0) return rlc_ops_cpu();
#endif
    rlc_errf(err, errlen, "device \"%s\" is not a device (expected auto, cpu or cuda)", device);
    return NULL;
}

int rlc_backend_is_host(const rlc_ops *ops) { return strcmp(ops->name, "cpu") == 0; }

int rlc_backend_set_precision(const rlc_ops *ops, const char *precision, char *err, size_t errlen) {
    const int is_auto = strcmp(precision, "auto") == 0;
    if (!is_auto && strcmp(precision, "mixed") && strcmp(precision, "bf16-gemm") && strcmp(precision, "fp32"))
        return rlc_errf(err, errlen, "precision \"%s\" is not a mode (expected auto, mixed, bf16-gemm or fp32)",
                        precision);
    if (rlc_backend_is_host(ops)) {
        if (!is_auto && strcmp(precision, "fp32"))
            fprintf(stderr, "rlc: precision \"%s\" applies to the cuda backend; this job runs on the cpu backend "
                            "(fp32)\n", precision);
        return 0;
    }
#ifdef RLC_HAVE_CUDA
    if (!is_auto)
        for (int m = RLC_CUDA_FP32; m <= RLC_CUDA_MIXED; m++)
            if (!strcmp(precision, rlc_ops_cuda_precision_name(m))) rlc_ops_cuda_set_precision(m);
#endif
    return 0;
}

// RLC_FORCE_NCCL=1: the NCCL path also on a single rank (to measure it against the no-communication path).
static int force_from_env(void) {
    const char *f = getenv("RLC_FORCE_NCCL");
    return f && strcmp(f, "1") == 0;
}

int rlc_backend_attach_dist(const rlc_ops *ops, struct rlc_dist *d, int zero1, int force, char *err, size_t errlen) {
    force = force || force_from_env();
    if (rlc_backend_is_host(ops)) {
        if (force && d->rank == 0) fprintf(stderr, "rlc: RLC_FORCE_NCCL ignored: the CPU backend's collectives are MPI's\n");
        return 0;
    }
    if (d->size <= 1 && !force) return 0;
#if defined(RLC_HAVE_CUDA) && defined(RLC_HAVE_DIST_NCCL)
    if (rlc_dist_nccl_attach(d, zero1, err, errlen) != 0) return -1;
    if (d->rank == 0)
        fprintf(stderr, "rlc: NCCL gradient collectives on %d rank%s (buckets of %.3g MiB%s%s)\n", d->size,
                d->size > 1 ? "s" : "", (double)d->dev->bucket_elems * sizeof(rlc_f) / 1048576.0,
                d->dev->overlap ? ", overlapped with the backward" : ", at the optimizer step",
                d->dev->zero1 ? ", ZeRO-1 reduce-scatter" : "");
    return 0;
#else
    (void)zero1;
    if (force)
        return rlc_errf(err, errlen, "RLC_FORCE_NCCL=1, but this rlc was built without NCCL (CMake found no nccl.h "
                                     "and libnccl next to the CUDA toolkit)");
    if (d->rank == 0)
        fprintf(stderr, "rlc: this rlc was built without NCCL: gradient collectives are staged through host memory "
                        "to MPI\n");
    return 0;
#endif
}

void rlc_backend_detach_dist(struct rlc_dist *d) {
#if defined(RLC_HAVE_CUDA) && defined(RLC_HAVE_DIST_NCCL)
    rlc_dist_nccl_detach(d);
#else
    (void)d;
#endif
}
