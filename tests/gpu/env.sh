# tests/gpu/env.sh: sourced by tests/gpu/check.sh and tests/gpu/profile.sh on the GPU machine. Unpacks the
# carried .debs/*.deb (tests/gpu/fetch_debs.sh) with dpkg -x into a private prefix and points pkg-config, CMake
# and the loader there (the GPU machine has no package registry); puts the CUDA tools on PATH. Sets
# RLC_GPU_ENV_MSG to one line saying what it did. Expects $src (the repository root).
prefix=/tmp/rlc-prefix
if ls "$src"/.debs/*.deb >/dev/null 2>&1; then
    if [ ! -f "$prefix/.unpacked" ]; then
        rm -rf "$prefix" && mkdir -p "$prefix"
        for f in "$src"/.debs/*.deb; do dpkg -x "$f" "$prefix"; done
        touch "$prefix/.unpacked"
    fi
    lib=$prefix/usr/lib/x86_64-linux-gnu
    export PKG_CONFIG_SYSROOT_DIR=$prefix
    export PKG_CONFIG_LIBDIR=$lib/pkgconfig:$lib/openblas-pthread/pkgconfig:$prefix/usr/share/pkgconfig
    export LD_LIBRARY_PATH=$lib:$lib/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    if ! command -v pkg-config >/dev/null && [ -x "$prefix/usr/bin/pkgconf" ]; then
        mkdir -p "$prefix/bin" && ln -sf "$prefix/usr/bin/pkgconf" "$prefix/bin/pkg-config"
        export PATH=$prefix/bin:$PATH
    fi
    RLC_GPU_ENV_MSG="prefix: $(ls "$src"/.debs/*.deb | wc -l) .deb files unpacked in $prefix"
else
    RLC_GPU_ENV_MSG="prefix: no .debs/ (run tests/gpu/fetch_debs.sh first if the build cannot find cJSON/OpenBLAS)"
fi
export PATH=$PATH:/usr/local/cuda/bin
