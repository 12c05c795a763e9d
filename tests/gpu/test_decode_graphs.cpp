// tests/gpu/test_decode_graphs.cpp: decode steps recorded as CUDA graphs and replayed, on the real CUDA backend. The
// body and what it checks are the emulator test's (tests/emu/test_decode_graphs.cpp): on a GPU the recordings are
// real stream captures, and the replays must give the bits of the steps run directly.
#include "../emu/test_decode_graphs.cpp"
