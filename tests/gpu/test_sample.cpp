// tests/gpu/test_sample.cpp: device-side sampling and the device Philox against the CPU on a real GPU. The body is
// the emulator test's (tests/emu/test_sample.cpp, where the cases and tolerances are documented); built without
// RLC_EMU it runs each case twice (outputs must repeat bit for bit) and adds larger shapes (V = 151936 at n = 512).
#include "../emu/test_sample.cpp"
