#!/usr/bin/env bash
# tests/run_all.sh: build rlc and run the whole test suite (the README's test command; .ci/run calls it).
#   1. Release build with -Werror, all ctest programs (CPU tests and emulated CUDA kernels, label emu).
#   2. CUDA compile layer: nvcc builds every kernels/cuda/*.cu for sm_90a with warnings as errors (if nvcc exists).
#   3. AddressSanitizer build: the bad-input tests (configs, safetensors, checkpoints) and the mutation fuzzer of
#      every file rlc reads (tests/test_fuzz_files.c).
#   4. Emulator under sanitizers: every emulated test with ASan+UBSan, the emulator's own tests with TSan
#      (inter-block race detection).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$JOBS}
# ctest -j runs several multi-threaded tests (and mpirun's ranks) on the same cores: OpenMP threads that spin at
# a join while their partner is descheduled slow a test down several-fold (test_e2e once passed its 600 s limit
# this way); passive threads sleep instead (measured: the EMPG scenario next to two busy processes 84 s spinning,
# 33 s passive; alone 19 s and 20 s).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

echo "== build (Release, -Werror)"
# RLC_CUDA=AUTO (the default): with nvcc present this also builds the real CUDA library and the GPU programs.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DRLC_WERROR=ON >/dev/null
cmake --build build -j "$JOBS"
echo "== ctest"
ctest --test-dir build --output-on-failure -j "$JOBS"

if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  echo "== nvcc compile check (sm_90a, warnings as errors)"
  bash tests/emu/nvcc_check.sh
fi

echo "== AddressSanitizer: bad-input tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DRLC_ASAN=ON -DRLC_CUDA=OFF >/dev/null
cmake --build build-asan -j "$JOBS" --target test_config test_safetensors test_checkpoint test_fuzz_files
ctest --test-dir build-asan --output-on-failure -R 'test_(config|safetensors|checkpoint|fuzz_files)$'

echo "== emulator under ASan and TSan"
bash tests/emu/sanitize.sh build-sanitize
echo "== all test layers passed"
