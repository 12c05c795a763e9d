#!/usr/bin/env bash
# tests/emu/sanitize.sh [BUILD_ROOT]: builds the emulator tests (target emu_all) with AddressSanitizer +
# UBSan (all of `ctest -L emu`; nccl_ranks and the shuffle orders in shorter forms: tests/emu/CMakeLists.txt) and
# with ThreadSanitizer (the emulator's own emu_* programs). In these builds emu_bugs also asserts that
# ASan reports the planted out-of-bounds global write and TSan the planted race between blocks.
# Default BUILD_ROOT: build-sanitize/ in the repository (git-ignored). Exit status non-zero on any failure.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
root=${1:-$src/build-sanitize}
jobs=$(nproc 2>/dev/null || echo 2)
status=0
for san in address thread; do
    b=$root/$san
    echo "== emu tests with -fsanitize=$san ($b)"
    t0=$(date +%s)
    mkdir -p "$b" # the configure log goes inside the build dir (git-ignored), not next to it in the repository
    cmake -S "$src" -B "$b" -DRLC_EMU_SANITIZE=$san -DRLC_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$b/cmake.log" 2>&1 ||
        { cat "$b/cmake.log"; exit 1; }
    if [ $san = address ]; then # every emulated test, kernel tests of other issues included
        cmake --build "$b" -j"$jobs" --target emu_all
        (cd "$b" && ctest -L emu --output-on-failure -j"$jobs") || status=1
    else # TSan: the emulator's own programs (inter-block race detection, fibers, atomics, fences)
        cmake --build "$b" -j"$jobs" --target emu_kat emu_bugs emu_checks emu_defer emu_graph
        (cd "$b" && ctest -L emu -R '^emu_' --output-on-failure -j"$jobs") || status=1
    fi
    echo "== $san: $(( $(date +%s) - t0 )) s"
done
exit $status
