// tests/emu/emu_test.h: harness for kernel tests under the CUDA emulator (C++17, g++ -DRLC_EMU). Owns
//   emu_test::run_all_schedules(what, body)  runs a test body under the forward, reverse and seeded random
//       schedules and CHECKs that every output it records is bitwise identical across the three: a kernel
//       with a missing barrier or an inter-block dependency gives different bytes (or NaN from the shared-
//       memory fill). The body also compares with its CPU twin using CHECK / CHECK_CLOSE of test_util.h.
//   emu_test::expect_death(what, fn, needle) runs fn in a forked child and CHECKs that it fails with a
//       message containing needle (planted-bug tests: the emulator aborts with a clear error).
//   emu_test::to_device / from_device        vector <-> cudaMalloc'd buffer.
// A kernel test (tests/emu/test_*.cpp) looks like:
//   #include "emu_test.h"
//   int main() {
//       emu_test::run_all_schedules("softmax", [&](emu_test::Outputs &out) {
//           ... upload, RLC_LAUNCH or call the backend, download ...
//           out.add("y", y);                                  // compared across schedules, bit for bit
//           for (...) CHECK_CLOSE(y[i], y_cpu[i], 1e-5, 1e-4, "y vs CPU twin");
//       });
//       return test_finish("test_softmax");
//   }
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "rlc_cuda.h"
#include "test_common.h"
#include "test_util.h"

namespace emu_test {

struct Outputs {
    std::vector<std::pair<std::string, std::vector<unsigned char>>> items;
    void add_bytes(const char *name, const void *p, size_t bytes) {
        const unsigned char *b = (const unsigned char *)p;
        items.emplace_back(name, std::vector<unsigned char>(b, b + bytes));
    }
    template <class T> void add(const char *name, const std::vector<T> &v) {
        add_bytes(name, v.data(), v.size() * sizeof(T));
    }
};

inline Outputs run_all_schedules(const char *what, const std::function<void(Outputs &)> &body,
                                 uint64_t seed = 12345) {
    const emu::Schedule modes[3] = {emu::Schedule::forward, emu::Schedule::reverse, emu::Schedule::random};
    Outputs first;
    for (int m = 0; m < 3; m++) {
        emu::set_schedule(modes[m], seed);
        Outputs o;
        body(o);
        if (m == 0) {
            first = o;
            continue;
        }
        CHECK(o.items.size() == first.items.size(), "%s: %s schedule recorded %zu outputs, forward %zu", what,
              emu::schedule_name(modes[m]), o.items.size(), first.items.size());
        for (size_t i = 0; i < o.items.size() && i < first.items.size(); i++) {
            const auto &a = first.items[i].second, &b = o.items[i].second;
            size_t diff = a.size();
            if (a.size() == b.size())
                for (diff = 0; diff < a.size() && a[diff] == b[diff]; diff++) {
                }
            CHECK(a.size() == b.size() && diff == a.size(),
                  "%s: output '%s' differs between the forward and %s schedules (first differing byte %zu of %zu): "
                  "a missing __syncthreads/__syncwarp or a dependency between blocks",
                  what, first.items[i].first.c_str(), emu::schedule_name(modes[m]), diff, a.size());
        }
    }
    emu::set_schedule(emu::Schedule::forward);
    return first;
}

// rlc_test::expect_death (tests/emu/test_common.h), with the device synchronised after fn in the child: in the
// emulator's deferred mode a planted kernel bug only shows when its queued work runs.
inline void expect_death(const char *what, const std::function<void()> &fn, const char *needle) {
    rlc_test::expect_death(what, [&] {
        fn();
        cudaDeviceSynchronize();
    }, needle);
}

template <class T> inline T *to_device(const std::vector<T> &h) {
    T *d = nullptr;
    RLC_CUDA_CHECK(cudaMalloc((void **)&d, h.size() * sizeof(T) + (h.empty() ? 1 : 0)));
    if (!h.empty()) RLC_CUDA_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}
template <class T> inline std::vector<T> from_device(const T *d, size_t n) {
    std::vector<T> h(n);
    if (n) RLC_CUDA_CHECK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
}

} // namespace emu_test
