/* Internals shared by the tokenizer loaders and the encoder. */
#ifndef DPB_TOK_INTERNAL_H
#define DPB_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stdint.h>
#include "tokenizer/tokenizer.h"

enum tok_kind {
    TOK_BYTE_LEVEL = 1, /* symbols are bytes; vocab strings use GPT-2's byte-to-unicode map */
    TOK_SPM = 2,        /* symbols are UTF-8 characters, spaces are U+2581, <0xNN> byte fallback */
};

enum { TF_PRESENT = 1, TF_SPECIAL = 2, TF_BYTE = 4, TF_ADDED = 8, TF_CONTROL = 16, TF_UNK = 32 };

typedef struct tok_added {
    int32_t id;
    uint32_t off, len; /* content in arena */
    bool special, lstrip, rstrip;
} tok_added;

typedef struct trie_node {
    int32_t child;   /* first child or -1 */
    int32_t sibling; /* next sibling or -1 */
    int32_t added;   /* index into added[] when a token ends here, else -1 */
    uint8_t byte;
} trie_node;

typedef struct cache_entry {
    uint64_t hash;
    uint8_t klen, nids;
    uint8_t key[30];
    int32_t ids[6];
} cache_entry;
#define TOK_CACHE_BITS 16
#define TOK_CACHE_MAXKEY 30
#define TOK_CACHE_MAXIDS 6

struct dpb_tokenizer {
    int kind;
    char desc[160];
    /* tokens by id */
    uint32_t n_ids;     /* max id + 1 */
    uint32_t id_limit;  /* ids must stay below this (set from the file's entry count) */
    uint32_t *tok_off;  /* into arena */
    uint32_t *tok_len;
    uint8_t *tok_flags;
    uint8_t *tok_byte;  /* byte value of <0xNN> tokens */
    uint8_t *arena;
    size_t arena_len, arena_cap;
    /* vocabulary lookup: piece bytes -> id (regular vocab only) */
    struct vt_entry {
        uint32_t tag;   /* high hash bits */
        uint32_t id1;   /* id + 1; 0 = empty */
        uint32_t off, len; /* the token's bytes in arena (saves a lookup in tok_off/tok_len) */
    } *vt;
    size_t vt_mask;
    /* merges: (left << 32 | right) -> (rank << 32 | new id) */
    uint64_t *pt;       /* pairs: [2k] key, [2k+1] value */
    size_t p_mask, p_count;
    bool ignore_merges;
    bool byte_fallback;
    bool fuse_unk;
    int32_t unk_id;
    int32_t byte_ids[256];     /* byte-level: single-byte token; spm: <0xNN> token; -1 none */
    /* normalizer */
    bool nfc;
    bool space_to_meta;        /* " " -> U+2581 */
    bool prepend_meta;         /* prepend U+2581 to each segment (HF Prepend / spm dummy prefix) */
    bool prepend_first_only;   /* dummy prefix only at the start of the text */
    bool remove_extra_ws;
    bool strip_leading_space;  /* decoder drops one leading space */
    bool spm_split_ok;         /* no token holds X U+2581 (X not U+2581): words encode independently */
    bool meta_split;           /* Metaspace split=true: a piece starts at every U+2581 */
    /* pre-tokenizer */
    bool bytelevel_prefix_space;
    pcre2_code *re;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jstack;
    bool jit;
    uint32_t match_limit, depth_limit;
    /* added tokens */
    tok_added *added;
    size_t n_added;
    trie_node *trie;
    size_t n_trie, cap_trie;
    bool first_byte[256];
    /* cache of pre-token -> ids */
    cache_entry *cache;
    size_t cache_mask;
    /* scratch */
    uint8_t *scratch;
    size_t scratch_cap;
};

/* core (tokenizer.c) */
dpb_status tok_new(int kind, dpb_tokenizer **out);
dpb_status tok_set_token(dpb_tokenizer *t, int32_t id, const uint8_t *s, size_t len, uint8_t flags, const char *what);
dpb_status tok_build_vocab_index(dpb_tokenizer *t, const char *what);
int32_t tok_lookup(const dpb_tokenizer *t, const uint8_t *s, size_t len);
dpb_status tok_pairs_reserve(dpb_tokenizer *t, size_t n);
/* Adds a merge; duplicates keep the first (lowest) rank. */
void tok_pair_add(dpb_tokenizer *t, int32_t a, int32_t b, uint32_t rank, int32_t merged);
dpb_status tok_add_added(dpb_tokenizer *t, int32_t id, const char *content, size_t len, bool special, bool lstrip,
                         bool rstrip, const char *what);
dpb_status tok_set_pattern(dpb_tokenizer *t, const char *pattern, const char *what);
dpb_status tok_finish(dpb_tokenizer *t, const char *what);
/* Derives merges from the vocabulary: every split of a piece into two pieces
 * is a merge ranked by rank_of[id] (tiktoken ranks, SentencePiece scores). */
dpb_status tok_pairs_from_vocab(dpb_tokenizer *t, const uint32_t *rank_of, bool utf8_splits);

/* GPT-2 byte <-> unicode map. */
void tok_bytelevel_tables(uint32_t byte_to_cp[256]);

/* gzip-aware whole-file read (NUL-terminated). */
dpb_status tok_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len);

#define TOK_MAX_FILE (512u << 20)

#endif
