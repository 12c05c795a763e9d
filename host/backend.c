// host/backend.c: the config's "device" key -> an op table (see include/rlc/backend.h). Compiled into rlc_core
// without RLC_HAVE_CUDA (a CPU-only selection), and with RLC_HAVE_CUDA=1 into the rlc executable when CMake
// builds the CUDA library (cmake/cuda.cmake); both copies define the same symbols.
#include "rlc/backend.h"

#include <string.h>

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
