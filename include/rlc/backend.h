// include/rlc/backend.h: which op table (include/rlc/ops.h) a job runs on, and which collectives carry its
// gradients. The one place that turns the config's "device" key into a backend: "cpu" (kernels/cpu), "cuda"
// (kernels/cuda, rlc_ops_cuda) or "auto" (the GPU when one is visible, else the CPU); and the one place that
// attaches NCCL to the process group of a job on the CUDA backend.
//
// host/backend.c is compiled twice: into rlc_core without CUDA (then "cuda" is an error and "auto" is the CPU),
// and, when CMake builds the CUDA library (cmake/cuda.cmake), once more with RLC_HAVE_CUDA into the rlc
// executable, whose copy takes precedence over rlc_core's. So the CPU test programs linked to rlc_core never
// touch a GPU, and the emulator tests (which link the emulated CUDA library) inject their backend directly
// (rlc_train_opts.ops, rlc_rl_init's ops).
#pragma once
#include <stddef.h>
#include "rlc/ops.h"

// The backend for device "auto" | "cpu" | "cuda" on a rank whose node-local rank is local_rank (it picks the
// GPU: local_rank modulo the visible devices, made current with cudaSetDevice). Returns NULL with a message in
// err that names the key ("device") when the device cannot be used: "cuda" without a CUDA build or without a
// visible GPU, or an unknown name. Nothing else is touched before a GPU is chosen, so it can run before any work.
const rlc_ops *rlc_backend_select(const char *device, int local_rank, char *err, size_t errlen);

// The CUDA backend's precision mode from the config's "precision" key (rlc_ops_cuda_set_precision): "mixed"
// (bf16 activations and GEMMs, fp32 master weights and statistics), "bf16-gemm", "fp32"; "auto" keeps the
// backend's default (mixed, or RLC_CUDA_PRECISION from the environment). Call it after rlc_backend_select, before
// the backend allocates anything. On the CPU backend (fp32 only) "auto" and "fp32" are no-ops and the bf16 modes
// print a note (a config validated for "cpu" cannot ask for them; "auto" may have fallen back to the CPU).
// Returns 0, or -1 with a message in err naming the key.
int rlc_backend_set_precision(const rlc_ops *ops, const char *precision, char *err, size_t errlen);

// 1 when the backend's memory is host memory (the CPU backend): host code may read and write its tensors
// directly and hand them to MPI. 0 for a device backend: go through ops->download / ops->upload.
int rlc_backend_is_host(const rlc_ops *ops);

// The large collectives of a job on backend ops (collective: every rank calls it right after
// rlc_backend_select, before the backend allocates anything). On the CUDA backend with more than one rank, or
// with force (or env RLC_FORCE_NCCL=1) on any number including one, it creates the NCCL communicator and sets
// d->dev (rlc_dist_nccl_attach; zero1 as rlc_sched_zero1_active). On the CPU backend it does nothing (the
// collectives are MPI's); on the CUDA backend of a build without NCCL, several ranks stage through host memory,
// and forcing NCCL is an error. Returns 0, or -1 with a message in err.
struct rlc_dist;
int rlc_backend_attach_dist(const rlc_ops *ops, struct rlc_dist *d, int zero1, int force, char *err, size_t errlen);
// Undo rlc_backend_attach_dist (waits for collectives in flight). Safe when nothing was attached.
void rlc_backend_detach_dist(struct rlc_dist *d);
