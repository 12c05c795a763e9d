// host/tokenizer.c: the character-level tokenizer of include/rlc/tokenizer.h (ids: 0 <eos>, 1 <bos>,
// 2 '\n', 3..97 = ' '..'~'). Unencodable characters are an error, never dropped.
#include "rlc/tokenizer.h"

static int char_to_id(unsigned char c) {
    if (c == '\n') return 2;
    if (c >= ' ' && c <= '~') return 3 + (c - ' ');
    return -1;
}

int rlc_tok_char(int id) {
    if (id == 2) return '\n';
    if (id >= 3 && id < RLC_TOK_VOCAB) return ' ' + (id - 3);
    return -1;
}

int rlc_tok_encode(const char *text, int *ids, int cap) {
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        int id = char_to_id(*p);
        if (id < 0 || n >= cap) return -1;
        ids[n++] = id;
    }
    return n;
}

int rlc_tok_decode(const int *ids, int n, char *text, size_t cap) {
    if (cap == 0) return 0;
    size_t len = 0;
    for (int i = 0; i < n && len + 1 < cap; i++) {
        int c = rlc_tok_char(ids[i]);
        if (c >= 0) text[len++] = (char)c;
    }
    text[len] = 0;
    return (int)len;
}
