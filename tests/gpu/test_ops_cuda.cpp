// tests/gpu/test_ops_cuda.cpp: the CUDA op table against its CPU twin on a real GPU. The body is the emulator
// test's (tests/emu/test_ops_cuda.cpp, where the cases and tolerances are documented); built without RLC_EMU it
// runs each case twice (outputs must repeat bit for bit) and adds larger shapes.
#include "../emu/test_ops_cuda.cpp"
