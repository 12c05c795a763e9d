// include/rlc/batch.h: token packing. Turns sequences into packed model inputs (no padding): the input of a
// sequence of length L is tokens[0..L-2], its targets tokens[1..L-1]; a target that the policy did not
// generate (prompt, observation) is -1. Micro-batches hold whole sequences within a token budget.
#pragma once
#include "rlc/rollout.h"

typedef struct rlc_packed {
    int B, T;          // sequences, tokens
    int *tokens;       // (T) inputs
    int *targets;      // (T) next token, or -1 where not a loss target
    int *cu_seqlens;   // (B+1)
    int *seq;          // (B) index of each packed sequence in the caller's array
} rlc_packed;

// Pack seqs[idx[0..n-1]] (all when idx is NULL, n sequences).
void rlc_pack(const rlc_sequence *seqs, const int *idx, int n, rlc_packed *out);
void rlc_packed_free(rlc_packed *p);
// Split n sequences (idx order) into consecutive micro-batches of at most budget input tokens each (a longer
// sequence gets a micro-batch of its own). starts (n+1) receives boundaries; returns the count.
int rlc_micro_batches(const rlc_sequence *seqs, const int *idx, int n, int budget, int *starts);
