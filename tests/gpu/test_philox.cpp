// tests/gpu/test_philox.cpp: the device Philox against host/rng.c on a real GPU, bitwise. The body is the emulator
// test's (tests/emu/test_philox.cpp); built without RLC_EMU it runs each case twice and with more keys.
#include "../emu/test_philox.cpp"
