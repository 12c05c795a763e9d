// tests/emu/kat_main.cpp: driver of the known-answer tests (kat.h). Usage:
//   kat [--only NAME] [--dump FILE]   run every KAT (under the emulator: in all three schedules, outputs
//                                      must be bitwise identical) and optionally write the outputs to FILE
//   kat --compare EMU_FILE GPU_FILE    compare two dumps (floats within each output's tolerance)
// Exit status 0 only if every check passed.
#include <cstdlib>
#include <map>

#include "kat.h"

static void dump(FILE *f, const char *kat, const KatOut &o) {
    for (const auto &it : o.items) {
        fprintf(f, "%s/%s %d %.3g %zu\n", kat, it.name.c_str(), (int)it.is_float, it.tol, it.bits.size());
        for (size_t i = 0; i < it.bits.size(); i++) fprintf(f, "%08x%c", it.bits[i], (i % 16 == 15) ? '\n' : ' ');
        fprintf(f, "\n");
    }
}

struct Rec {
    int is_float;
    double tol;
    std::vector<uint32_t> bits;
};
static std::map<std::string, Rec> load(const char *path) {
    std::map<std::string, Rec> m;
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "kat: cannot open %s\n", path);
        exit(2);
    }
    char name[512];
    Rec r;
    size_t n;
    while (fscanf(f, "%511s %d %lf %zu", name, &r.is_float, &r.tol, &n) == 4) {
        r.bits.assign(n, 0);
        for (size_t i = 0; i < n; i++)
            if (fscanf(f, "%x", &r.bits[i]) != 1) break;
        m[name] = r;
    }
    fclose(f);
    return m;
}

static int compare(const char *a_path, const char *b_path) {
    auto a = load(a_path), b = load(b_path);
    int bad = 0;
    for (auto &kv : a) {
        auto it = b.find(kv.first);
        if (it == b.end() || it->second.bits.size() != kv.second.bits.size()) {
            printf("%-32s MISSING or size differs in %s\n", kv.first.c_str(), b_path);
            bad++;
            continue;
        }
        size_t nbad = 0, first = 0;
        double worst = 0;
        for (size_t i = 0; i < kv.second.bits.size(); i++) {
            uint32_t x = kv.second.bits[i], y = it->second.bits[i];
            bool ok = x == y;
            if (!ok && kv.second.is_float && kv.second.tol > 0) {
                float fx, fy;
                memcpy(&fx, &x, 4);
                memcpy(&fy, &y, 4);
                double e = fabs((double)fx - fy) / std::max(1.0, fabs((double)fy));
                worst = std::max(worst, e);
                ok = e <= kv.second.tol;
            }
            if (!ok && nbad++ == 0) first = i;
        }
        printf("%-32s %-4s n=%-6zu %s", kv.first.c_str(), kv.second.is_float ? "f32" : "u32", kv.second.bits.size(),
               nbad ? "MISMATCH" : "match");
        if (kv.second.is_float) printf(" (max rel diff %.2e, tol %.1e)", worst, kv.second.tol);
        if (nbad) printf(" %zu differ, first at %zu: %08x vs %08x", nbad, first, kv.second.bits[first], it->second.bits[first]);
        printf("\n");
        bad += nbad != 0;
    }
    printf("compare %s vs %s: %s\n", a_path, b_path, bad ? "FAIL" : "ok");
    return bad ? 1 : 0;
}

#if defined(RLC_EMU)
static bool same_outputs(const KatOut &a, const KatOut &b, std::string &what) {
    if (a.items.size() != b.items.size()) return what = "number of outputs", false;
    for (size_t i = 0; i < a.items.size(); i++)
        if (a.items[i].bits != b.items[i].bits) return what = a.items[i].name, false;
    return true;
}
#endif

int main(int argc, char **argv) {
    const char *only = nullptr, *dump_path = nullptr;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--compare") && i + 2 < argc) return compare(argv[i + 1], argv[i + 2]);
        if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--dump") && i + 1 < argc) dump_path = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--only NAME] [--dump FILE] | --compare A B\n", argv[0]);
            return 2;
        }
    }
    FILE *df = dump_path ? fopen(dump_path, "w") : nullptr;
    if (dump_path && !df) {
        fprintf(stderr, "kat: cannot write %s\n", dump_path);
        return 2;
    }
    int failed = 0, ran = 0;
    for (const Kat &k : kat_registry()) {
        if (only && strcmp(only, k.name)) continue;
        ran++;
        KatOut first;
#if defined(RLC_EMU)
        const emu::Schedule modes[3] = {emu::Schedule::forward, emu::Schedule::reverse, emu::Schedule::random};
        bool ok = true;
        for (int m = 0; m < 3; m++) {
            emu::set_schedule(modes[m], 777);
            KatOut o;
            o.kat = k.name;
            k.fn(o);
            if (o.failures) ok = false;
            std::string what;
            if (m == 0) first = o;
            else if (!same_outputs(first, o, what)) {
                fprintf(stderr, "  %s: output '%s' differs between the forward and %s schedules\n", k.name,
                        what.c_str(), emu::schedule_name(modes[m]));
                ok = false;
            }
        }
        emu::set_schedule(emu::Schedule::forward);
        printf("kat %-20s %s (%d checks, 3 schedules)\n", k.name, ok ? "ok" : "FAIL", first.checks);
#else
        first.kat = k.name;
        k.fn(first);
        bool ok = first.failures == 0;
        printf("kat %-20s %s (%d checks)\n", k.name, ok ? "ok" : "FAIL", first.checks);
#endif
        failed += !ok;
        if (df) dump(df, k.name, first);
    }
    if (df) fclose(df);
    if (!ran) {
        fprintf(stderr, "kat: no known-answer test matched\n");
        return 1;
    }
    printf("kat: %d of %d failed\n", failed, ran);
    return failed ? 1 : 0;
}
