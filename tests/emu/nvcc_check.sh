#!/usr/bin/env bash
# tests/emu/nvcc_check.sh: CI layer (a). nvcc compiles every kernels/cuda/*.cu and the emulator's
# known-answer / planted-bug kernels (tests/emu/*.cu) for sm_90a, with every warning an error (nvcc, ptxas
# and the host compiler), and prints ptxas's resource report per kernel: registers, shared memory, stack
# frame and spills. Files are compiled in parallel (one job per core). Exit status non-zero if any fails.
# Env: NVCC (default: nvcc on PATH, else /usr/local/cuda/bin/nvcc), NVCC_JOBS.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
if [ ! -x "$NVCC" ]; then
    echo "nvcc_check: nvcc not found (set NVCC)" >&2
    exit 1
fi
jobs=${NVCC_JOBS:-$(nproc 2>/dev/null || echo 2)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
extra=()
cuda_inc=$(dirname "$NVCC")/../include
[ -f "$cuda_inc/nccl.h" ] && extra+=(-DRLC_HAVE_NCCL)

compile_one() { # file -> $tmp/<n>.log, $tmp/<n>.rc
    local f=$1 n
    n=$(echo "$f" | tr '/.' '__')
    set +e
    "$NVCC" -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Werror all-warnings -Xptxas -v,-warn-spills,-warn-lmem-usage \
        -Xcompiler -Wall,-Wextra,-Werror -I"$src/kernels/cuda" -I"$src/tests/emu" -I"$src/include" "${extra[@]}" \
        -c "$src/$f" -o "$tmp/$n.o" >"$tmp/$n.log" 2>&1
    echo $? >"$tmp/$n.rc"
}
export -f compile_one
export NVCC src tmp
export extra_s="${extra[*]}"

cd "$src"
files=$(ls kernels/cuda/*.cu tests/emu/*.cu 2>/dev/null || true)
if [ -z "$files" ]; then
    echo "nvcc_check: no .cu files"
    exit 0
fi
t0=$(date +%s)
# shellcheck disable=SC2086
printf '%s\n' $files | xargs -P "$jobs" -I{} bash -c 'extra=($extra_s); compile_one "$@"' _ {}

status=0
printf '%-34s %-44s %5s %7s %7s %6s %6s\n' file kernel regs smem stack spillS spillL
for f in $files; do
    n=$(echo "$f" | tr '/.' '__')
    rc=$(cat "$tmp/$n.rc")
    if [ "$rc" != 0 ]; then
        echo "FAIL $f (nvcc exit $rc):"
        sed 's/^/    /' "$tmp/$n.log"
        status=1
        continue
    fi
    # ptxas -v: "Compiling entry function 'NAME' for 'sm_90a'", "Function properties for NAME",
    # "N bytes stack frame, N bytes spill stores, N bytes spill loads", "Used N registers, ... N bytes smem"
    awk -v file="$f" '
        /Compiling entry function/ { match($0, /function .[^'"'"']*/); fn = substr($0, RSTART + 10, RLENGTH - 10); next }
        /bytes stack frame/ { n = split($0, a, /[ ,]+/); for (i = 1; i <= n; i++) { if (a[i] == "stack") st = a[i-2]; if (a[i] == "spill" && a[i+1] == "stores") ss = a[i-2]; if (a[i] == "spill" && a[i+1] == "loads") sl = a[i-2] } }
        /Used [0-9]+ registers/ { r = $0; sub(/.*Used /, "", r); sub(/ registers.*/, "", r); sm = "0";
            if (match($0, /[0-9]+ bytes smem/)) { sm = substr($0, RSTART, RLENGTH); sub(/ bytes smem/, "", sm) }
            if (fn != "") printf "%-34s %-44s %5s %7s %7s %6s %6s%s\n", file, fn, r, sm, st, ss, sl, (ss + sl > 0 ? "  SPILLS" : "");
            fn = "" }
    ' "$tmp/$n.log" >"$tmp/$n.tab"
    [ -s "$tmp/$n.tab" ] || printf '%-34s %s\n' "$f" "(no kernels)"
    while read -r line; do
        # demangle the kernel name column
        name=$(echo "$line" | awk '{print $2}')
        dem=$(echo "$name" | c++filt 2>/dev/null | sed 's/(.*//' || echo "$name")
        echo "$line" | awk -v d="${dem:0:44}" '{ $2 = d; printf "%-34s %-44s %5s %7s %7s %6s %6s %s\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
    done <"$tmp/$n.tab"
done
echo "nvcc_check: $(echo "$files" | wc -w) files for sm_90a in $(( $(date +%s) - t0 )) s: $([ $status = 0 ] && echo ok || echo FAILED)"
exit $status
