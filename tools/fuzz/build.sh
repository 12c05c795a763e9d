#!/usr/bin/env bash
# tools/fuzz/build.sh: build the libFuzzer harnesses (tools/fuzz/libfuzzer_parsers.c) with clang, ASan and UBSan
# into build-libfuzzer/ (gnu11, as CMake builds). Local bug hunting only, not part of CI. Needs a configured build/ (for default_config.c).
# Run, e.g.:  build-libfuzzer/fuzz_safetensors -max_total_time=120 build-libfuzzer/corpus_st
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=build-libfuzzer
mkdir -p "$OUT/obj"
SAN="-fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -g -O1"
# The host (the parsers) is instrumented by clang; the CPU kernels, which the parsers never run and whose GCC
# vector extensions clang does not compile for the baseline ISA, are linked as plain GCC objects.
SRC=$(ls host/*.c host/tasks/*.c | grep -v host/main.c; echo build/default_config.c)
OBJS=()
for f in $SRC kernels/cpu/*.c; do
  o="$OUT/obj/$(echo "$f" | tr '/' '_').o"
  case "$f" in
  kernels/*) gcc -std=gnu11 -O2 -fopenmp -Iinclude -Ikernels/cpu -c "$f" -o "$o" & ;;
  *) clang -std=gnu11 -fopenmp $SAN -fsanitize=fuzzer-no-link -Iinclude -Ihost -Ikernels/cpu -c "$f" -o "$o" & ;;
  esac
  OBJS+=("$o")
  while [ "$(jobs -r | wc -l)" -ge "${JOBS:-2}" ]; do wait -n; done
done
wait
LIBS="$(pkg-config --libs libcjson openblas) -lm -fopenmp -lgomp"
names=(x safetensors config repro hf_config)
for t in 1 2 3 4; do
  clang -std=gnu11 $SAN -fsanitize=fuzzer -DFUZZ_TARGET=$t -Iinclude tools/fuzz/libfuzzer_parsers.c "${OBJS[@]}" \
    $LIBS -o "$OUT/fuzz_${names[$t]}"
done
echo "built $OUT/fuzz_{safetensors,config,repro,hf_config}"
