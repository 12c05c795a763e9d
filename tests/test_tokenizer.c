// tests/test_tokenizer.c: the character-level tokenizer: ids per the documented table, round trips,
// errors on unencodable characters and overflow, special tokens skipped on decode.
#include <string.h>
#include "rlc/tokenizer.h"
#include "test_util.h"

int main(void) {
    // the documented table, built independently: '\n' = 2, ' '..'~' = 3..97
    char all[100];
    int want[100], n = 0;
    all[n] = '\n';
    want[n++] = 2;
    for (int c = 32; c <= 126; c++) {
        all[n] = (char)c;
        want[n++] = c - 29;
    }
    all[n] = 0;
    CHECK(n == RLC_TOK_VOCAB - 2, "table size %d", n);
    int ids[128];
    int m = rlc_tok_encode(all, ids, 128);
    CHECK(m == n, "encode count %d want %d", m, n);
    for (int i = 0; i < n && i < m; i++) CHECK(ids[i] == want[i], "char %d -> id %d want %d", all[i], ids[i], want[i]);
    for (int i = 0; i < n; i++) CHECK(rlc_tok_char(want[i]) == (unsigned char)all[i], "id %d -> char", want[i]);
    CHECK(rlc_tok_char(RLC_TOK_EOS) == -1 && rlc_tok_char(RLC_TOK_BOS) == -1, "special ids have no char");
    CHECK(rlc_tok_char(RLC_TOK_VOCAB) == -1 && rlc_tok_char(-5) == -1, "out-of-range ids have no char");
    CHECK(want[1] == 3 && want[n - 1] == 97, "' ' = 3 and '~' = 97");

    // round trip, and decode skips special tokens
    const char *text = "12+345=357\nnums 3 7 25 50 target 175:(25-3)*7+21\n#.# .@a ##G -\n";
    int k = rlc_tok_encode(text, ids + 1, 126);
    CHECK(k == (int)strlen(text), "encode length %d", k);
    ids[0] = RLC_TOK_BOS;
    ids[k + 1] = RLC_TOK_EOS;
    char back[256];
    int len = rlc_tok_decode(ids, k + 2, back, sizeof back);
    CHECK(len == k && strcmp(back, text) == 0, "round trip: got \"%s\"", back);

    // errors: unencodable characters, overflow; empty text is fine
    CHECK(rlc_tok_encode("a\tb", ids, 128) == -1, "tab must be rejected");
    CHECK(rlc_tok_encode("caf\xc3\xa9", ids, 128) == -1, "non-ASCII must be rejected");
    CHECK(rlc_tok_encode("x\ry", ids, 128) == -1, "CR must be rejected");
    CHECK(rlc_tok_encode("\x7f", ids, 128) == -1, "DEL must be rejected");
    CHECK(rlc_tok_encode("abcdef", ids, 5) == -1, "overflow must be an error");
    CHECK(rlc_tok_encode("abcde", ids, 5) == 5, "exact fit");
    CHECK(rlc_tok_encode("", ids, 0) == 0, "empty text");

    // decode always NUL-terminates within cap
    char small[4];
    int sl = rlc_tok_decode(ids, 5, small, sizeof small);
    CHECK(sl == 3 && small[3] == 0 && strncmp(small, "abc", 3) == 0, "truncated decode: %d \"%s\"", sl, small);
    return test_finish("test_tokenizer");
}
