// host/batch.c: token packing and micro-batch splitting (see include/rlc/batch.h).
#include "rlc/batch.h"

#include <stdlib.h>
#include <string.h>

#include "rlc/util.h"

void rlc_pack(const rlc_sequence *seqs, const int *idx, int n, rlc_packed *out) {
    memset(out, 0, sizeof *out);
    int T = 0;
    for (int i = 0; i < n; i++) T += seqs[idx ? idx[i] : i].len - 1;
    out->B = n;
    out->T = T;
    out->tokens = rlc_malloc((size_t)(T > 0 ? T : 1) * sizeof(int));
    out->targets = rlc_malloc((size_t)(T > 0 ? T : 1) * sizeof(int));
    out->cu_seqlens = rlc_malloc((size_t)(n + 1) * sizeof(int));
    out->seq = rlc_malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    int t = 0;
    out->cu_seqlens[0] = 0;
    for (int i = 0; i < n; i++) {
        const rlc_sequence *s = &seqs[idx ? idx[i] : i];
        RLC_CHECK(s->len >= 2, "pack: sequence %d has %d tokens (need >= 2)", idx ? idx[i] : i, s->len);
        for (int j = 0; j + 1 < s->len; j++, t++) {
            out->tokens[t] = s->tokens[j];
            out->targets[t] = s->mask[j + 1] ? s->tokens[j + 1] : -1;
        }
        out->cu_seqlens[i + 1] = t;
        out->seq[i] = idx ? idx[i] : i;
    }
}

void rlc_packed_free(rlc_packed *p) {
    free(p->tokens);
    free(p->targets);
    free(p->cu_seqlens);
    free(p->seq);
    memset(p, 0, sizeof *p);
}

int rlc_micro_batches(const rlc_sequence *seqs, const int *idx, int n, int budget, int *starts) {
    int nb = 0, used = 0;
    starts[0] = 0;
    for (int i = 0; i < n; i++) {
        int len = seqs[idx ? idx[i] : i].len - 1;
        if (used > 0 && used + len > budget) {
            starts[++nb] = i;
            used = 0;
        }
        used += len;
    }
    if (n > 0) starts[++nb] = n;
    return nb;
}
