// tests/gpu/test_grad_overlap.cpp: the NCCL gradient path on one GPU: rlc_comm's shard collectives, the bucketed
// gradient rounds overlapped with the backward on a real side stream (one-rank NCCL when the build has NCCL), and
// SFT / GRPO steps with the device collectives forced against the plain ones (bit for bit, which on hardware also
// needs deterministic kernels). The body is the emulator test's (tests/emu/test_grad_overlap.cpp); CMakeLists.txt
// compiles host/comm_nccl.c into this program.
#include "../emu/test_grad_overlap.cpp"
