// include/rlc/tokenizer.h: character-level tokenizer for the built-in synthetic tasks.
// Ids: 0 = <eos>, 1 = <bos>, then '\n' = 2, then printable ASCII ' '..'~' = 3..97. RLC_TOK_VOCAB = 98.
// Characters outside that set are an error on encode (returns -1), never silently dropped.
#pragma once
#include <stddef.h>

#define RLC_TOK_EOS 0
#define RLC_TOK_BOS 1
#define RLC_TOK_VOCAB 98

// Encode text into ids (at most cap). Returns the count, or -1 on an unencodable character or overflow.
int rlc_tok_encode(const char *text, int *ids, int cap);
// Decode ids into text (special tokens are skipped). Always NUL-terminates; returns the length written.
int rlc_tok_decode(const int *ids, int n, char *text, size_t cap);
// One id to its character (or -1 for special tokens).
int rlc_tok_char(int id);
