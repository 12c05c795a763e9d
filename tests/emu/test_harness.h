// tests/emu/test_harness.h: run_case for the kernel tests that are built both ways. Under the emulator (RLC_EMU) a
// case runs in the emulator's three schedule orders and its recorded outputs must agree bit for bit
// (emu_test::run_all_schedules); built for a GPU (tests/gpu/ includes the same sources) it runs twice and the
// outputs must repeat bit for bit (no atomics, fixed-order sums).
#pragma once
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "test_util.h"
#ifdef RLC_EMU
#include "emu_test.h"
#endif

namespace rlc_test {

#ifdef RLC_EMU
using Outputs = emu_test::Outputs;
inline void run_case(const char *name, const std::function<void(Outputs &)> &body) {
    emu_test::run_all_schedules(name, body);
}
#else
struct Outputs {
    std::vector<std::pair<std::string, std::vector<unsigned char>>> items;
    template <class T> void add(const char *name, const std::vector<T> &v) {
        const unsigned char *b = (const unsigned char *)v.data();
        items.emplace_back(name, std::vector<unsigned char>(b, b + v.size() * sizeof(T)));
    }
};
inline void run_case(const char *name, const std::function<void(Outputs &)> &body) {
    Outputs a, b;
    body(a);
    body(b);
    CHECK(a.items.size() == b.items.size(), "%s: runs recorded different outputs", name);
    for (size_t i = 0; i < a.items.size() && i < b.items.size(); i++)
        CHECK(a.items[i].second == b.items[i].second, "%s: output '%s' differs between two runs", name,
              a.items[i].first.c_str());
}
#endif

} // namespace rlc_test
