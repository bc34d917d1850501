/* deploybench tokenizers: exact byte-level BPE (gpt-oss o200k_harmony, Qwen3,
 * GPT-2) and SentencePiece-style BPE with byte fallback (Yi, Llama 2), chat
 * templates built in C (never Jinja), and prompts of exactly N tokens.
 *
 * Files understood (dpb_tokenizer_load picks by content/name):
 *   - Hugging Face tokenizer.json, plain or gzip-compressed (*.gz);
 *   - SentencePiece tokenizer.model (BPE models only; Unigram is refused);
 *   - tiktoken rank files (*.tiktoken) with an optional specials JSON
 *     ({"pat_str": ..., "special_tokens": {"<|x|>": id}}).
 *
 * A tokenizer is immutable after loading except for its pre-token cache:
 * use one dpb_tokenizer per thread (or dpb_tokenizer_load the file again).
 * Input text must be valid UTF-8; invalid UTF-8 is an error naming the byte
 * offset (nothing is replaced silently).  Decoding replaces byte sequences
 * that are not valid UTF-8 with U+FFFD, like the reference libraries. */
#ifndef DPB_TOKENIZER_H
#define DPB_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/status.h"

typedef struct dpb_tokenizer dpb_tokenizer;

/* A growable id list; free with dpb_tokens_free. */
typedef struct dpb_tokens {
    int32_t *ids;
    size_t n, cap;
} dpb_tokens;
void dpb_tokens_free(dpb_tokens *t);

/* Loads tokenizer.json[.gz], tokenizer.model or *.tiktoken.  For a
 * .tiktoken file, specials_path (may be NULL) is a JSON file with pat_str and
 * special_tokens; without it the o200k pattern and no specials are used. */
dpb_status dpb_tokenizer_load(const char *path, dpb_tokenizer **out);
dpb_status dpb_tokenizer_load_tiktoken(const char *path, const char *specials_path, dpb_tokenizer **out);
/* tokenizer.json text already in memory ("what" names it in errors). */
dpb_status dpb_tokenizer_load_json_text(const char *text, size_t len, const char *what, dpb_tokenizer **out);
/* tokenizer.model bytes already in memory. */
dpb_status dpb_tokenizer_load_spm_bytes(const uint8_t *data, size_t len, const char *what, dpb_tokenizer **out);
void dpb_tokenizer_free(dpb_tokenizer *t);

/* Limits for untrusted pre-tokenizer patterns (defaults 10,000,000 and 10,000). */
void dpb_tokenizer_set_match_limits(dpb_tokenizer *t, uint32_t match_limit, uint32_t depth_limit);

enum {
    DPB_TOK_ALLOW_SPECIAL = 1, /* match special added tokens (<|endoftext|>) in the text */
};

/* Appends the ids of text[0..len) to out (out may already hold ids). */
dpb_status dpb_tokenizer_encode(dpb_tokenizer *t, const char *text, size_t len, unsigned flags, dpb_tokens *out);
/* Counts tokens without keeping them. */
dpb_status dpb_tokenizer_count(dpb_tokenizer *t, const char *text, size_t len, unsigned flags, size_t *count);

/* Decodes ids to a NUL-terminated string the caller frees.  An id outside
 * the vocabulary is an error naming its position. skip_special drops special tokens. */
dpb_status dpb_tokenizer_decode(const dpb_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                                char **out, size_t *out_len);

/* Streaming decoder: push one id at a time, get only complete UTF-8. */
typedef struct dpb_tokenizer_stream {
    const dpb_tokenizer *tok;
    bool skip_special;
    bool at_start;
    uint8_t pend[4];
    int npend;
    char *buf; /* returned text lives here until the next call */
    size_t cap;
} dpb_tokenizer_stream;
void dpb_tokenizer_stream_init(dpb_tokenizer_stream *s, const dpb_tokenizer *t, bool skip_special);
dpb_status dpb_tokenizer_stream_push(dpb_tokenizer_stream *s, int32_t id, const char **text, size_t *len);
/* Flushes a trailing incomplete sequence as U+FFFD. */
dpb_status dpb_tokenizer_stream_finish(dpb_tokenizer_stream *s, const char **text, size_t *len);
void dpb_tokenizer_stream_free(dpb_tokenizer_stream *s);

/* Vocabulary. */
size_t dpb_tokenizer_vocab_size(const dpb_tokenizer *t); /* max id + 1 */
/* The id of a token given its literal text (added tokens first, then the vocabulary); -1 if none. */
int32_t dpb_tokenizer_token_id(const dpb_tokenizer *t, const char *text);
/* A short description: "byte-level BPE, 201088 ids, 1090 added" (static per tokenizer). */
const char *dpb_tokenizer_describe(const dpb_tokenizer *t);

/* ---- chat templates (src/tokenizer/chat.c) ---- */

typedef enum dpb_chat_template {
    DPB_CHAT_NONE = 0,   /* text is the concatenated message contents, no markup (base models) */
    DPB_CHAT_HARMONY,    /* gpt-oss */
    DPB_CHAT_QWEN3,      /* ChatML with <think> handling */
    DPB_CHAT_CHATML,     /* plain ChatML (Yi-34B-Chat) */
} dpb_chat_template;

typedef struct dpb_chat_message {
    const char *role; /* system, developer, user, assistant */
    const char *content;
} dpb_chat_message;

typedef struct dpb_chat_options {
    const char *date;             /* Harmony "Current date" (YYYY-MM-DD); NULL = today (UTC) */
    const char *reasoning;        /* Harmony: low | medium | high; NULL = medium */
    const char *model_identity;   /* Harmony; NULL = the default ChatGPT identity */
    bool enable_thinking;         /* Qwen3: false appends the empty <think></think> block */
    bool add_generation_prompt;
} dpb_chat_options;
void dpb_chat_options_default(dpb_chat_options *o); /* thinking on, generation prompt on */

/* "none", "harmony" (alias "gpt-oss"), "qwen3", "chatml" (alias "yi-chat"). */
dpb_status dpb_chat_template_parse(const char *name, dpb_chat_template *out);
const char *dpb_chat_template_name(dpb_chat_template t);
/* Chooses from a model folder: config.json model_type, then markers in
 * tokenizer_config.json's chat_template (or chat_template.jinja). */
dpb_status dpb_chat_template_detect(const char *model_dir, dpb_chat_template *out);
/* Renders messages into a NUL-terminated string the caller frees. */
dpb_status dpb_chat_render(dpb_chat_template tpl, const dpb_chat_options *o, const dpb_chat_message *msgs, size_t n,
                           char **out, size_t *out_len);

/* ---- exact-length prompts ---- */
typedef struct dpb_exact_prompt_options {
    dpb_chat_template tpl;
    dpb_chat_options chat;
    const char *system;     /* optional system message, NULL for none */
    uint64_t seed;
    const char *source_text; /* text to draw words from (NULL = built-in generator) */
    size_t source_len;
} dpb_exact_prompt_options;

/* Builds a user message such that the templated prompt tokenizes (specials
 * allowed) to exactly n_tokens.  Writes the message (caller frees) and, when
 * ids is not NULL, the prompt's ids.  When n_tokens is below the template's
 * own overhead the error names the minimum. */
dpb_status dpb_tokenizer_exact_prompt(dpb_tokenizer *t, const dpb_exact_prompt_options *o, size_t n_tokens,
                                      char **user_message, dpb_tokens *ids);
/* The token count of the template with an empty user message. */
dpb_status dpb_tokenizer_template_overhead(dpb_tokenizer *t, const dpb_exact_prompt_options *o, size_t *out);

#endif
