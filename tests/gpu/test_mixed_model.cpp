// tests/gpu/test_mixed_model.cpp: the model's memory in each precision mode and its precision-mode guards on the real
// CUDA backend. The body and what it checks are the emulator test's (tests/emu/test_mixed_model.cpp): the death
// tests fork before the device is touched, and cudaMalloc is counted at the requested sizes on a GPU too.
#include "../emu/test_mixed_model.cpp"
