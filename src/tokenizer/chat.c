/* Built-in chat templates (the Jinja in model files is never evaluated) and
 * prompts of exactly N tokens after the template. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/file.h"
#include "core/json.h"
#include "tokenizer/tokenizer.h"

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_addn(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 1024;
        while (nc < b->n + n + 1) nc *= 2;
        char *q = realloc(b->p, nc);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_add(sbuf *b, const char *s) { sb_addn(b, s, strlen(s)); }

void dpb_chat_options_default(dpb_chat_options *o)
{
    memset(o, 0, sizeof *o);
    o->enable_thinking = true;
    o->add_generation_prompt = true;
}

static const struct {
    const char *name;
    dpb_chat_template t;
} k_names[] = {
    {"none", DPB_CHAT_NONE},     {"harmony", DPB_CHAT_HARMONY}, {"gpt-oss", DPB_CHAT_HARMONY},
    {"qwen3", DPB_CHAT_QWEN3},   {"chatml", DPB_CHAT_CHATML},   {"yi-chat", DPB_CHAT_CHATML},
};

dpb_status dpb_chat_template_parse(const char *name, dpb_chat_template *out)
{
    for (size_t i = 0; i < sizeof k_names / sizeof k_names[0]; i++)
        if (strcmp(name, k_names[i].name) == 0) {
            *out = k_names[i].t;
            return DPB_OK;
        }
    return dpb_error_set(DPB_E_ARG, "chat template '%s' is unknown (none, harmony, qwen3, chatml)", name);
}

const char *dpb_chat_template_name(dpb_chat_template t)
{
    switch (t) {
    case DPB_CHAT_HARMONY: return "harmony";
    case DPB_CHAT_QWEN3: return "qwen3";
    case DPB_CHAT_CHATML: return "chatml";
    default: return "none";
    }
}

static bool template_from_text(const char *tpl, dpb_chat_template *out)
{
    if (!tpl || !*tpl) return false;
    if (strstr(tpl, "<|channel|>") && strstr(tpl, "<|start|>")) *out = DPB_CHAT_HARMONY;
    else if (strstr(tpl, "<|im_start|>")) *out = (strstr(tpl, "enable_thinking") || strstr(tpl, "<think>")) ? DPB_CHAT_QWEN3 : DPB_CHAT_CHATML;
    else return false;
    return true;
}

dpb_status dpb_chat_template_detect(const char *model_dir, dpb_chat_template *out)
{
    *out = DPB_CHAT_NONE;
    char *p = NULL;
    dpb_status st;
    /* 1. markers in the chat template */
    if ((st = dpb_path_join(model_dir, "tokenizer_config.json", &p))) return st;
    if (dpb_file_exists(p)) {
        cJSON *tc;
        st = dpb_json_load(p, 64u << 20, &tc);
        free(p);
        p = NULL;
        if (st) return st;
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(tc, "chat_template");
        const char *txt = NULL;
        if (cJSON_IsString(ct)) txt = ct->valuestring;
        else if (cJSON_IsArray(ct)) { /* [{"name": "default", "template": ...}] */
            const cJSON *e;
            cJSON_ArrayForEach(e, ct)
            {
                const cJSON *tp = cJSON_GetObjectItemCaseSensitive(e, "template");
                if (cJSON_IsString(tp)) {
                    txt = tp->valuestring;
                    break;
                }
            }
        }
        bool found = template_from_text(txt, out);
        cJSON_Delete(tc);
        if (found) return DPB_OK;
    }
    free(p);
    if ((st = dpb_path_join(model_dir, "chat_template.jinja", &p))) return st;
    if (dpb_file_exists(p)) {
        char *txt;
        size_t len;
        st = dpb_file_read(p, 16u << 20, &txt, &len);
        free(p);
        p = NULL;
        if (st) return st;
        bool found = template_from_text(txt, out);
        free(txt);
        if (found) return DPB_OK;
    }
    free(p);
    /* 2. model_type */
    if ((st = dpb_path_join(model_dir, "config.json", &p))) return st;
    if (dpb_file_exists(p)) {
        cJSON *cfg;
        st = dpb_json_load(p, 16u << 20, &cfg);
        free(p);
        if (st) return st;
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(cfg, "model_type");
        if (cJSON_IsString(mt)) {
            if (strcmp(mt->valuestring, "gpt_oss") == 0) *out = DPB_CHAT_HARMONY;
            else if (strncmp(mt->valuestring, "qwen3", 5) == 0) *out = DPB_CHAT_QWEN3;
        }
        cJSON_Delete(cfg);
        return DPB_OK;
    }
    free(p);
    return DPB_OK;
}

/* Python-like strip of '\n' on the given sides, into a new sbuf. */
static void add_stripped(sbuf *b, const char *s, size_t n, bool left, bool right)
{
    while (left && n && *s == '\n') {
        s++;
        n--;
    }
    while (right && n && s[n - 1] == '\n') n--;
    sb_addn(b, s, n);
}

static const char *last_strstr(const char *h, const char *needle)
{
    const char *r = NULL, *p = h;
    while ((p = strstr(p, needle))) {
        r = p;
        p++;
    }
    return r;
}

static dpb_status render_qwen3(const dpb_chat_options *o, const dpb_chat_message *m, size_t n, sbuf *b)
{
    size_t last_query = n ? n - 1 : 0;
    for (size_t i = n; i-- > 0;)
        if (strcmp(m[i].role, "user") == 0) {
            last_query = i;
            break;
        }
    for (size_t i = 0; i < n; i++) {
        const char *c = m[i].content ? m[i].content : "";
        if (strcmp(m[i].role, "user") == 0 || strcmp(m[i].role, "system") == 0) {
            sb_add(b, "<|im_start|>");
            sb_add(b, m[i].role);
            sb_add(b, "\n");
            sb_add(b, c);
            sb_add(b, "<|im_end|>\n");
        } else if (strcmp(m[i].role, "assistant") == 0) {
            const char *content = c, *reason = "";
            size_t clen = strlen(c), rlen = 0;
            const char *end_think = strstr(c, "</think>");
            if (end_think) {
                /* reasoning = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') */
                size_t head = (size_t)(end_think - c);
                while (head && c[head - 1] == '\n') head--;
                const char *st = c, *q = c;
                while ((q = strstr(q, "<think>")) && (size_t)(q - c) < head) {
                    st = q + 7;
                    q++;
                }
                reason = st;
                rlen = head - (size_t)(st - c);
                while (rlen && *reason == '\n') {
                    reason++;
                    rlen--;
                }
                const char *tail = last_strstr(c, "</think>") + 8;
                while (*tail == '\n') tail++;
                content = tail;
                clen = strlen(tail);
            }
            if (i > last_query && (i == n - 1 || rlen)) {
                sb_add(b, "<|im_start|>assistant\n<think>\n");
                add_stripped(b, reason, rlen, true, true);
                sb_add(b, "\n</think>\n\n");
                add_stripped(b, content, clen, true, false);
            } else {
                sb_add(b, "<|im_start|>assistant\n");
                sb_addn(b, content, clen);
            }
            sb_add(b, "<|im_end|>\n");
        } else return dpb_error_set(DPB_E_ARG, "chat template qwen3: message %zu: role '%s' is not supported", i, m[i].role);
    }
    if (o->add_generation_prompt) {
        sb_add(b, "<|im_start|>assistant\n");
        if (!o->enable_thinking) sb_add(b, "<think>\n\n</think>\n\n");
    }
    return DPB_OK;
}

static dpb_status render_harmony(const dpb_chat_options *o, const dpb_chat_message *m, size_t n, sbuf *b)
{
    char today[16];
    const char *date = o->date;
    if (!date) {
        time_t now = time(NULL);
        struct tm tmv;
        gmtime_r(&now, &tmv);
        strftime(today, sizeof today, "%Y-%m-%d", &tmv);
        date = today;
    }
    const char *effort = o->reasoning ? o->reasoning : "medium";
    if (strcmp(effort, "low") && strcmp(effort, "medium") && strcmp(effort, "high"))
        return dpb_error_set(DPB_E_ARG, "chat template harmony: reasoning effort '%s' is not low, medium or high", effort);
    sb_add(b, "<|start|>system<|message|>");
    sb_add(b, o->model_identity ? o->model_identity : "You are ChatGPT, a large language model trained by OpenAI.");
    sb_add(b, "\nKnowledge cutoff: 2024-06\nCurrent date: ");
    sb_add(b, date);
    sb_add(b, "\n\nReasoning: ");
    sb_add(b, effort);
    sb_add(b, "\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>");
    size_t first = 0;
    if (n && (strcmp(m[0].role, "system") == 0 || strcmp(m[0].role, "developer") == 0)) {
        if (m[0].content && *m[0].content) {
            sb_add(b, "<|start|>developer<|message|># Instructions\n\n");
            sb_add(b, m[0].content);
            sb_add(b, "\n\n<|end|>");
        }
        first = 1;
    }
    for (size_t i = first; i < n; i++) {
        const char *c = m[i].content ? m[i].content : "";
        if (strcmp(m[i].role, "user") == 0) {
            sb_add(b, "<|start|>user<|message|>");
            sb_add(b, c);
            sb_add(b, "<|end|>");
        } else if (strcmp(m[i].role, "assistant") == 0) {
            sb_add(b, "<|start|>assistant<|channel|>final<|message|>");
            sb_add(b, c);
            sb_add(b, i == n - 1 && !o->add_generation_prompt ? "<|return|>" : "<|end|>");
        } else
            return dpb_error_set(DPB_E_ARG,
                                 "chat template harmony: message %zu: role '%s' is not supported there (system or "
                                 "developer only as the first message)",
                                 i, m[i].role);
    }
    if (o->add_generation_prompt) sb_add(b, "<|start|>assistant");
    return DPB_OK;
}

dpb_status dpb_chat_render(dpb_chat_template tpl, const dpb_chat_options *o, const dpb_chat_message *m, size_t n,
                           char **out, size_t *out_len)
{
    *out = NULL;
    sbuf b = {0};
    dpb_status st = DPB_OK;
    dpb_chat_options def;
    if (!o) {
        dpb_chat_options_default(&def);
        o = &def;
    }
    for (size_t i = 0; i < n; i++)
        if (!m[i].role) return dpb_error_set(DPB_E_ARG, "chat: message %zu has no role", i);
    sb_add(&b, "");
    switch (tpl) {
    case DPB_CHAT_HARMONY: st = render_harmony(o, m, n, &b); break;
    case DPB_CHAT_QWEN3: st = render_qwen3(o, m, n, &b); break;
    case DPB_CHAT_CHATML:
        for (size_t i = 0; i < n; i++) {
            sb_add(&b, "<|im_start|>");
            sb_add(&b, m[i].role);
            sb_add(&b, "\n");
            sb_add(&b, m[i].content ? m[i].content : "");
            sb_add(&b, "<|im_end|>\n");
        }
        if (o->add_generation_prompt) sb_add(&b, "<|im_start|>assistant\n");
        break;
    default:
        for (size_t i = 0; i < n; i++) {
            if (i) sb_add(&b, "\n\n");
            sb_add(&b, m[i].content ? m[i].content : "");
        }
        break;
    }
    if (!st && b.oom) st = dpb_error_set(DPB_E_NOMEM, "chat: out of memory");
    if (st) {
        free(b.p);
        return st;
    }
    *out = b.p;
    if (out_len) *out_len = b.n;
    return DPB_OK;
}

/* ------------------------------------------------------------------ */
/* Exact-length prompts                                                 */

static const char *const k_words[] = {
    "the",     "of",      "and",     "a",       "to",      "in",      "is",      "you",     "that",    "it",
    "he",      "was",     "for",     "on",      "are",     "as",      "with",    "his",     "they",    "at",
    "be",      "this",    "have",    "from",    "or",      "one",     "had",     "by",      "word",    "but",
    "not",     "what",    "all",     "were",    "we",      "when",    "your",    "can",     "said",    "there",
    "use",     "an",      "each",    "which",   "she",     "do",      "how",     "their",   "if",      "will",
    "up",      "other",   "about",   "out",     "many",    "then",    "them",    "these",   "so",      "some",
    "her",     "would",   "make",    "like",    "him",     "into",    "time",    "has",     "look",    "two",
    "more",    "write",   "go",      "see",     "number",  "no",      "way",     "could",   "people",  "my",
    "than",    "first",   "water",   "been",    "call",    "who",     "oil",     "its",     "now",     "find",
    "long",    "down",    "day",     "did",     "get",     "come",    "made",    "may",     "part",    "over",
    "new",     "sound",   "take",    "only",    "little",  "work",    "know",    "place",   "year",    "live",
    "me",      "back",    "give",    "most",    "very",    "after",   "thing",   "our",     "just",    "name",
    "good",    "sentence","man",     "think",   "say",     "great",   "where",   "help",    "through", "much",
    "before",  "line",    "right",   "too",     "mean",    "old",     "any",     "same",    "tell",    "boy",
    "follow",  "came",    "want",    "show",    "also",    "around",  "form",    "three",   "small",   "set",
    "put",     "end",     "does",    "another", "well",    "large",   "must",    "big",     "even",    "such",
    "because", "turn",    "here",    "why",     "ask",     "went",    "men",     "read",    "need",    "land",
    "different","home",   "us",      "move",    "try",     "kind",    "hand",    "picture", "again",   "change",
    "off",     "play",    "spell",   "air",     "away",    "animal",  "house",   "point",   "page",    "letter",
    "mother",  "answer",  "found",   "study",   "still",   "learn",   "should",  "world",   "high",    "every",
};
#define N_WORDS (sizeof k_words / sizeof k_words[0])

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Word source: built-in sentences, or the whitespace-separated words of a text. */
typedef struct word_src {
    uint64_t rng;
    const char *text;
    size_t len, pos;
    int in_sentence;
} word_src;

/* Appends the next word (with its leading space unless first) to b; returns false if the source is empty. */
static bool next_word(word_src *w, sbuf *b, bool first)
{
    if (w->text) {
        for (int pass = 0; pass < 2; pass++) {
            while (w->pos < w->len && (w->text[w->pos] == ' ' || w->text[w->pos] == '\n' || w->text[w->pos] == '\t' ||
                                       w->text[w->pos] == '\r'))
                w->pos++;
            if (w->pos < w->len) break;
            w->pos = 0;
        }
        size_t s = w->pos;
        while (w->pos < w->len && !(w->text[w->pos] == ' ' || w->text[w->pos] == '\n' || w->text[w->pos] == '\t' ||
                                    w->text[w->pos] == '\r'))
            w->pos++;
        if (w->pos == s) return false;
        if (!first) sb_add(b, " ");
        sb_addn(b, w->text + s, w->pos - s);
        return true;
    }
    const char *word = k_words[splitmix(&w->rng) % N_WORDS];
    if (!first) sb_add(b, " ");
    if (w->in_sentence == 0) {
        char cap[32];
        snprintf(cap, sizeof cap, "%s", word);
        if (cap[0] >= 'a' && cap[0] <= 'z') cap[0] = (char)(cap[0] - 32);
        sb_add(b, cap);
    } else sb_add(b, word);
    w->in_sentence++;
    if (w->in_sentence >= 6 && splitmix(&w->rng) % 5 == 0) {
        sb_add(b, ".");
        w->in_sentence = 0;
    }
    return true;
}

static dpb_status count_with(dpb_tokenizer *t, const dpb_exact_prompt_options *o, const char *user, size_t *count,
                             dpb_tokens *ids)
{
    dpb_chat_message msgs[2];
    size_t n = 0;
    if (o->system) msgs[n++] = (dpb_chat_message){"system", o->system};
    msgs[n++] = (dpb_chat_message){"user", user};
    char *txt;
    size_t len;
    dpb_status st = dpb_chat_render(o->tpl, &o->chat, msgs, n, &txt, &len);
    if (st) return st;
    if (ids) {
        ids->n = 0;
        st = dpb_tokenizer_encode(t, txt, len, DPB_TOK_ALLOW_SPECIAL, ids);
        *count = ids->n;
    } else st = dpb_tokenizer_count(t, txt, len, DPB_TOK_ALLOW_SPECIAL, count);
    free(txt);
    return st;
}

dpb_status dpb_tokenizer_template_overhead(dpb_tokenizer *t, const dpb_exact_prompt_options *o, size_t *out)
{
    return count_with(t, o, "", out, NULL);
}

dpb_status dpb_tokenizer_exact_prompt(dpb_tokenizer *t, const dpb_exact_prompt_options *o, size_t n_tokens,
                                      char **user_message, dpb_tokens *ids)
{
    *user_message = NULL;
    size_t overhead;
    dpb_status st = dpb_tokenizer_template_overhead(t, o, &overhead);
    if (st) return st;
    if (n_tokens < overhead)
        return dpb_error_set(DPB_E_RANGE,
                             "exact prompt: %zu tokens is below the %s template's own overhead; the minimum is %zu tokens",
                             n_tokens, dpb_chat_template_name(o->tpl), overhead);
    if (n_tokens > (1u << 24)) return dpb_error_set(DPB_E_RANGE, "exact prompt: %zu tokens is too many", n_tokens);
    size_t target = n_tokens - overhead;
    /* Words with their end offsets, enough for target tokens. */
    word_src w = {.rng = o->seed ^ 0x5DEECE66Dull};
    if (o->source_text) {
        w.text = o->source_text;
        w.len = o->source_len;
        /* start at a seed-chosen word boundary */
        if (w.len) {
            uint64_t r = o->seed;
            w.pos = (size_t)(splitmix(&r) % w.len);
            while (w.pos > 0 && w.text[w.pos - 1] != ' ' && w.text[w.pos - 1] != '\n') w.pos--;
        }
    }
    sbuf words = {0};
    size_t cap_ends = target + 64, n_ends = 0;
    size_t *ends = malloc(cap_ends * sizeof *ends);
    if (!ends) return dpb_error_set(DPB_E_NOMEM, "exact prompt: out of memory");
    sb_add(&words, "");
    size_t cur = 0;
    char *msg = NULL;
    /* Grow the word list until the prompt holds at least n_tokens. */
    for (;;) {
        size_t add = target > n_ends ? target - n_ends + 8 : 16;
        for (size_t k = 0; k < add; k++) {
            if (n_ends == cap_ends) {
                cap_ends *= 2;
                size_t *q = realloc(ends, cap_ends * sizeof *q);
                if (!q) {
                    st = dpb_error_set(DPB_E_NOMEM, "exact prompt: out of memory");
                    goto done;
                }
                ends = q;
            }
            if (!next_word(&w, &words, n_ends == 0)) {
                st = dpb_error_set(DPB_E_ARG, "exact prompt: the source text has no words");
                goto done;
            }
            ends[n_ends++] = words.n;
        }
        if (words.oom) {
            st = dpb_error_set(DPB_E_NOMEM, "exact prompt: out of memory");
            goto done;
        }
        if ((st = count_with(t, o, words.p, &cur, NULL))) goto done;
        if (cur >= n_tokens) break;
        if (n_ends > 4 * (size_t)n_tokens + 64) {
            st = dpb_error_set(DPB_E_INTERNAL, "exact prompt: the text does not reach %zu tokens", n_tokens);
            goto done;
        }
    }
    /* Largest word prefix with count <= n_tokens (0 words = overhead <= n). */
    size_t lo = 0, hi = n_ends; /* count(lo) <= n, count(hi) >= n */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        char save = words.p[ends[mid - 1]];
        words.p[ends[mid - 1]] = 0;
        st = count_with(t, o, words.p, &cur, NULL);
        words.p[ends[mid - 1]] = save;
        if (st) goto done;
        if (cur <= n_tokens) lo = mid;
        else hi = mid;
    }
    /* Fill the last few tokens with pieces that add exactly one token each. */
    static const char *const fill[] = {" the", " a", " and", ".", " of", " to", " x", ",", "!", " it", "\n", " "};
    size_t k = lo;
    for (int attempt = 0; attempt < 64; attempt++) {
        sbuf m = {0};
        sb_addn(&m, words.p, k ? ends[k - 1] : 0);
        sb_add(&m, "");
        if (m.oom) {
            st = dpb_error_set(DPB_E_NOMEM, "exact prompt: out of memory");
            goto done;
        }
        if ((st = count_with(t, o, m.p, &cur, NULL))) {
            free(m.p);
            goto done;
        }
        while (cur < n_tokens) {
            bool grown = false;
            for (size_t f = 0; f < sizeof fill / sizeof fill[0]; f++) {
                const char *piece = m.n == 0 && fill[f][0] == ' ' ? fill[f] + 1 : fill[f];
                size_t before = m.n, c2;
                sb_add(&m, piece);
                if ((st = count_with(t, o, m.p, &c2, NULL))) {
                    free(m.p);
                    goto done;
                }
                if (c2 == cur + 1) {
                    cur = c2;
                    grown = true;
                    break;
                }
                m.n = before;
                m.p[before] = 0;
            }
            if (!grown) break;
        }
        if (cur == n_tokens && !m.oom) {
            msg = m.p;
            break;
        }
        free(m.p);
        if (k == 0) break;
        k--; /* drop a word and fill again */
    }
    if (!msg) {
        st = dpb_error_set(DPB_E_INTERNAL, "exact prompt: could not reach exactly %zu tokens", n_tokens);
        goto done;
    }
    if (ids) {
        size_t c3;
        if ((st = count_with(t, o, msg, &c3, ids))) goto done;
        if (c3 != n_tokens) {
            st = dpb_error_set(DPB_E_INTERNAL, "exact prompt: %zu tokens instead of %zu", c3, n_tokens);
            goto done;
        }
    }
    *user_message = msg;
    msg = NULL;
done:
    free(msg);
    free(words.p);
    free(ends);
    return st;
}
