// tests/gpu/test_grpo_step_cuda.cpp: the training engine on the real CUDA backend against the CPU backend (SFT
// step, greedy and sampled rollouts, a whole GRPO step, the trainer). The body and its tolerances are the emulator
// test's (tests/emu/test_grpo_step_cuda.cpp); here the CUDA side is rlc_cuda on the GPU.
#include "../emu/test_grpo_step_cuda.cpp"
