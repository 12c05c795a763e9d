#!/usr/bin/env bash
# tests/gpu/fetch_debs.sh [EXTRA_PACKAGE...]: run HERE (a machine with Debian's package registry), not on
# the GPU machine. Downloads the .deb files that the build needs beyond what the GPU machine has (it has
# nvcc, cuBLAS, NCCL, CMake, a C/C++ compiler, no package registry) into the git-ignored .debs/ at the
# repository root; tests/gpu/check.sh unpacks them there with `dpkg -x` into a private prefix.
#   cJSON:    libcjson-dev (headers, .so link, libcjson.pc) + libcjson1 (the library)
#   OpenBLAS: libopenblas-pthread-dev (cblas.h, openblas.pc, .so link) + libopenblas0-pthread (the library)
#             + libgfortran5 and libquadmath0 (its run-time dependencies)
#   pkg-config (CMake's FindPkgConfig needs it): pkg-config, pkgconf, pkgconf-bin, libpkgconf3
# (libopenblas-dev itself is an empty metapackage and not needed.) Later needs (OpenMPI, ...) can be passed
# as extra package names. Then, on the device: `bash tests/gpu/check.sh` with `.debs` carried.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
pkgs=(libcjson-dev libcjson1 libopenblas-pthread-dev libopenblas0-pthread libgfortran5 libquadmath0
      pkg-config pkgconf pkgconf-bin libpkgconf3 "$@")
mkdir -p "$src/.debs"
cd "$src/.debs"
if ! apt-get download "${pkgs[@]}" >/dev/null 2>&1; then
    apt-get update >/dev/null
    apt-get download "${pkgs[@]}"
fi
ls -l "$src/.debs"
du -sh "$src/.debs"
