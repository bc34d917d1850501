/* deploybench tokenize / detokenize. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "cli/cli.h"
#include "core/file.h"
#include "core/json.h"
#include "core/timeutil.h"
#include "tokenizer/tokenizer.h"

#define MAX_INPUT ((size_t)1 << 31)

static const char k_tok_help[] =
    "usage: deploybench tokenize (--model DIR | --tokenizer FILE) [input] [options]\n"
    "\n"
    "Encodes text to token ids with a model's own tokenizer (exact to tiktoken, Hugging Face\n"
    "tokenizers and sentencepiece on the reference vectors; see docs/TOKENIZER.md).\n"
    "\n"
    "tokenizer:\n"
    "  --model DIR          a model folder: DIR/tokenizer.json (or .json.gz, or tokenizer.model);\n"
    "                       the chat template is chosen from DIR's config.json and tokenizer_config.json\n"
    "  --tokenizer FILE     tokenizer.json, tokenizer.json.gz, tokenizer.model or *.tiktoken\n"
    "  --specials-file F    for a .tiktoken file: JSON with pat_str and special_tokens\n"
    "input (default: standard input):\n"
    "  --text T             the text T\n"
    "  --file F             the whole file F\n"
    "  --jsonl F            one {\"text\": ...} per line; writes one {\"ids\": [...]} per line, in order\n"
    "options:\n"
    "  --specials           match special tokens (<|endoftext|>, <|im_start|>) written in the text;\n"
    "                       without it they are encoded as plain text\n"
    "  --chat               wrap the input as one user message in the chat template (markup tokens are\n"
    "                       always specials)\n"
    "  --chat-template T    none | harmony | qwen3 | chatml (overrides the model's; default none\n"
    "                       with --tokenizer)\n"
    "  --system S           a system message for --chat / --exact-tokens\n"
    "  --reasoning R        harmony: low | medium | high (default medium)\n"
    "  --date YYYY-MM-DD    harmony: the current date written in the system message (default: today, UTC)\n"
    "  --no-thinking        qwen3: enable_thinking=false (appends the empty <think></think> block)\n"
    "  --count              print only the number of tokens\n"
    "  --json               print JSON ({\"count\": N, \"ids\": [...]})\n"
    "  --exact-tokens N     print a user message whose templated prompt is exactly N tokens\n"
    "                       (with --json also the prompt text and ids); fails naming the minimum\n"
    "  --seed S             seed for --exact-tokens (default 0)\n"
    "  --source F           draw --exact-tokens words from file F instead of the built-in generator\n"
    "  --bench FILE         time single-threaded encoding of FILE (plain text, no specials) and the\n"
    "                       tokenizer load; prints MB/s (10^6 bytes per second)\n"
    "  --repeat N           --bench runs (default 5; best and median are reported)\n"
    "\n"
    "Input must be valid UTF-8; invalid UTF-8 is an error naming the byte offset.\n";

static const char k_detok_help[] =
    "usage: deploybench detokenize (--model DIR | --tokenizer FILE) [--ids LIST | --file F | --jsonl F]\n"
    "                              [--skip-special] [--json] [--stream]\n"
    "\n"
    "Decodes token ids to text.  Ids are separated by spaces, commas or newlines (a JSON array works);\n"
    "they are read from standard input when no input option is given.\n"
    "  --model DIR / --tokenizer FILE / --specials-file F   as for tokenize\n"
    "  --ids LIST           the ids, e.g. \"13225, 11, 2375, 0\"\n"
    "  --file F             ids from file F\n"
    "  --jsonl F            one {\"ids\": [...]} per line; writes one {\"text\": ...} per line\n"
    "  --skip-special       drop special and control tokens\n"
    "  --json               print {\"text\": ...}\n"
    "  --stream             decode one id at a time, printing only complete UTF-8 (one chunk per line,\n"
    "                       JSON-quoted) to show streaming output\n"
    "An id outside the vocabulary is an error naming its position.  Byte sequences that are not\n"
    "valid UTF-8 decode to U+FFFD.\n";

typedef struct tok_args {
    const char *model, *tokenizer, *specials_file;
    const char *text, *file, *jsonl;
    const char *chat_template, *system, *reasoning, *date, *source, *bench, *ids;
    bool specials, chat, no_thinking, count, json, skip_special, stream;
    long long exact, seed, repeat;
} tok_args;

static dpb_status open_tokenizer(const tok_args *a, dpb_tokenizer **t)
{
    if (a->tokenizer) {
        size_t l = strlen(a->tokenizer);
        if (l >= 9 && strcmp(a->tokenizer + l - 9, ".tiktoken") == 0)
            return dpb_tokenizer_load_tiktoken(a->tokenizer, a->specials_file, t);
        return dpb_tokenizer_load(a->tokenizer, t);
    }
    static const char *const names[] = {"tokenizer.json", "tokenizer.json.gz", "tokenizer.model"};
    for (size_t i = 0; i < 3; i++) {
        char *p;
        dpb_status st = dpb_path_join(a->model, names[i], &p);
        if (st) return st;
        if (dpb_file_exists(p)) {
            st = dpb_tokenizer_load(p, t);
            free(p);
            return st;
        }
        free(p);
    }
    return dpb_error_set(DPB_E_IO, "%s: no tokenizer.json, tokenizer.json.gz or tokenizer.model", a->model);
}

static dpb_status read_stdin(char **out, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *b = malloc(cap + 1);
    if (!b) return dpb_error_set(DPB_E_NOMEM, "stdin: out of memory");
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_INPUT) {
                free(b);
                return dpb_error_set(DPB_E_RANGE, "stdin: more than %zu bytes", MAX_INPUT);
            }
            cap *= 2;
            char *q = realloc(b, cap + 1);
            if (!q) {
                free(b);
                return dpb_error_set(DPB_E_NOMEM, "stdin: out of memory");
            }
            b = q;
        }
        size_t r = fread(b + n, 1, cap - n, stdin);
        n += r;
        if (r == 0) break;
    }
    b[n] = 0;
    *out = b;
    *len = n;
    return DPB_OK;
}

static void print_ids_json(cJSON *o, const char *key, const int32_t *ids, size_t n)
{
    cJSON *arr = cJSON_AddArrayToObject(o, key);
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
}

static void print_json(cJSON *o, bool pretty)
{
    char *s = pretty ? cJSON_Print(o) : cJSON_PrintUnformatted(o);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        cJSON_free(s);
    }
    cJSON_Delete(o);
}

static void print_ids_plain(const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
}

static dpb_status chat_setup(const tok_args *a, dpb_chat_template *tpl, dpb_chat_options *o)
{
    dpb_chat_options_default(o);
    o->enable_thinking = !a->no_thinking;
    o->reasoning = a->reasoning;
    o->date = a->date;
    *tpl = DPB_CHAT_NONE;
    if (a->chat_template) return dpb_chat_template_parse(a->chat_template, tpl);
    if (a->model) return dpb_chat_template_detect(a->model, tpl);
    return DPB_OK;
}

/* Encodes one input (optionally wrapped in the chat template). */
static dpb_status encode_input(dpb_tokenizer *t, const tok_args *a, const char *text, size_t len, dpb_tokens *out)
{
    out->n = 0;
    if (!a->chat) return dpb_tokenizer_encode(t, text, len, a->specials ? DPB_TOK_ALLOW_SPECIAL : 0, out);
    if (memchr(text, 0, len)) return dpb_error_set(DPB_E_ARG, "--chat: the input holds a NUL byte");
    dpb_chat_template tpl;
    dpb_chat_options o;
    dpb_status st = chat_setup(a, &tpl, &o);
    if (st) return st;
    dpb_chat_message m[2];
    size_t n = 0;
    if (a->system) m[n++] = (dpb_chat_message){"system", a->system};
    m[n++] = (dpb_chat_message){"user", text};
    char *r;
    size_t rl;
    if ((st = dpb_chat_render(tpl, &o, m, n, &r, &rl))) return st;
    st = dpb_tokenizer_encode(t, r, rl, DPB_TOK_ALLOW_SPECIAL, out);
    free(r);
    return st;
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static int run_bench(const tok_args *a)
{
    uint64_t t0 = dpb_now_ns();
    dpb_tokenizer *t;
    dpb_status st = open_tokenizer(a, &t);
    if (st) return dpb_cli_fail("tokenize", st);
    uint64_t load_ns = dpb_now_ns() - t0;
    char *text;
    size_t len;
    if ((st = dpb_file_read(a->bench, MAX_INPUT, &text, &len))) {
        dpb_tokenizer_free(t);
        return dpb_cli_fail("tokenize", st);
    }
    int reps = (int)a->repeat;
    uint64_t *ns = calloc((size_t)reps, sizeof *ns);
    size_t ntok = 0;
    dpb_tokens tk = {0};
    for (int r = 0; r < reps && !st; r++) {
        /* a fresh tokenizer state each run would hide the cache; we keep it, as a client would */
        tk.n = 0;
        uint64_t s = dpb_now_ns();
        st = dpb_tokenizer_encode(t, text, len, 0, &tk);
        ns[r] = dpb_now_ns() - s;
        ntok = tk.n;
    }
    if (st) {
        free(ns);
        free(text);
        dpb_tokens_free(&tk);
        dpb_tokenizer_free(t);
        return dpb_cli_fail("tokenize", st);
    }
    qsort(ns, (size_t)reps, sizeof *ns, cmp_u64);
    double best = (double)len / ((double)ns[0] / 1e9) / 1e6;
    double med = (double)len / ((double)ns[reps / 2] / 1e9) / 1e6;
    double first_load_ms = (double)load_ns / 1e6;
    if (a->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "tokenizer", a->tokenizer ? a->tokenizer : a->model);
        cJSON_AddStringToObject(o, "describe", dpb_tokenizer_describe(t));
        cJSON_AddStringToObject(o, "file", a->bench);
        cJSON_AddNumberToObject(o, "bytes", (double)len);
        cJSON_AddNumberToObject(o, "tokens", (double)ntok);
        cJSON_AddNumberToObject(o, "load_ms", first_load_ms);
        cJSON_AddNumberToObject(o, "runs", reps);
        cJSON_AddNumberToObject(o, "best_mb_per_s", best);
        cJSON_AddNumberToObject(o, "median_mb_per_s", med);
        cJSON_AddNumberToObject(o, "threads", 1);
        print_json(o, false);
    } else {
        printf("tokenizer: %s (%s)\n", a->tokenizer ? a->tokenizer : a->model, dpb_tokenizer_describe(t));
        printf("load: %.1f ms\n", first_load_ms);
        printf("file: %s, %zu bytes, %zu tokens\n", a->bench, len, ntok);
        printf("encode, 1 thread, %d runs: best %.2f MB/s, median %.2f MB/s\n", reps, best, med);
    }
    free(ns);
    free(text);
    dpb_tokens_free(&tk);
    dpb_tokenizer_free(t);
    return 0;
}

static int run_exact(const tok_args *a, dpb_tokenizer *t)
{
    dpb_exact_prompt_options o = {.seed = (uint64_t)a->seed, .system = a->system};
    dpb_status st = chat_setup(a, &o.tpl, &o.chat);
    if (st) return dpb_cli_fail("tokenize", st);
    char *src = NULL;
    size_t sl = 0;
    if (a->source) {
        if ((st = dpb_file_read(a->source, MAX_INPUT, &src, &sl))) return dpb_cli_fail("tokenize", st);
        o.source_text = src;
        o.source_len = sl;
    }
    char *msg = NULL;
    dpb_tokens ids = {0};
    st = dpb_tokenizer_exact_prompt(t, &o, (size_t)a->exact, &msg, &ids);
    free(src);
    if (st) return dpb_cli_fail("tokenize", st);
    if (a->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "chat_template", dpb_chat_template_name(o.tpl));
        cJSON_AddNumberToObject(j, "count", (double)ids.n);
        cJSON_AddStringToObject(j, "user_message", msg);
        dpb_chat_message m[2];
        size_t n = 0;
        if (a->system) m[n++] = (dpb_chat_message){"system", a->system};
        m[n++] = (dpb_chat_message){"user", msg};
        char *r;
        if (dpb_chat_render(o.tpl, &o.chat, m, n, &r, NULL) == DPB_OK) {
            cJSON_AddStringToObject(j, "prompt", r);
            free(r);
        }
        if (!a->count) print_ids_json(j, "ids", ids.ids, ids.n);
        print_json(j, false);
    } else if (a->count) printf("%zu\n", ids.n);
    else printf("%s\n", msg);
    free(msg);
    dpb_tokens_free(&ids);
    return 0;
}

static int parse_common(const char *cmd, int argc, char **argv, tok_args *a, bool *help)
{
    memset(a, 0, sizeof *a);
    a->repeat = 5;
    a->exact = -1;
    *help = false;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
#define VAL(name, field)                                                                 \
    if (strcmp(o, name) == 0) {                                                          \
        if (i + 1 >= argc) return dpb_cli_usage_error(cmd, "%s needs a value", name);    \
        a->field = argv[++i];                                                            \
        continue;                                                                        \
    }
#define FLAG(name, field)                                                                \
    if (strcmp(o, name) == 0) {                                                          \
        a->field = true;                                                                 \
        continue;                                                                        \
    }
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            *help = true;
            return 0;
        }
        VAL("--model", model) VAL("--tokenizer", tokenizer) VAL("--specials-file", specials_file)
        VAL("--text", text) VAL("--file", file) VAL("--jsonl", jsonl) VAL("--chat-template", chat_template)
        VAL("--system", system) VAL("--reasoning", reasoning) VAL("--date", date) VAL("--source", source)
        VAL("--bench", bench) VAL("--ids", ids)
        FLAG("--specials", specials) FLAG("--chat", chat) FLAG("--no-thinking", no_thinking) FLAG("--count", count)
        FLAG("--json", json) FLAG("--skip-special", skip_special) FLAG("--stream", stream)
        if (strcmp(o, "--exact-tokens") == 0 || strcmp(o, "--seed") == 0 || strcmp(o, "--repeat") == 0) {
            if (i + 1 >= argc) return dpb_cli_usage_error(cmd, "%s needs a value", o);
            long long v;
            long long max = strcmp(o, "--repeat") == 0 ? 1000 : strcmp(o, "--seed") == 0 ? 0x7FFFFFFFFFFFFFFFll : 16777216;
            dpb_status st = dpb_cli_parse_i64(o, argv[++i], strcmp(o, "--repeat") == 0 ? 1 : 0, max, &v);
            if (st) return dpb_cli_fail(cmd, st);
            if (o[2] == 'e') a->exact = v;
            else if (o[2] == 's') a->seed = v;
            else a->repeat = v;
            continue;
        }
#undef VAL
#undef FLAG
        return dpb_cli_usage_error(cmd, "unknown option '%s'", o);
    }
    if (!a->model == !a->tokenizer) return dpb_cli_usage_error(cmd, "give exactly one of --model DIR or --tokenizer FILE");
    if (a->model && !dpb_dir_exists(a->model)) return dpb_cli_usage_error(cmd, "--model: '%s' is not a folder", a->model);
    if (a->specials_file && !a->tokenizer)
        return dpb_cli_usage_error(cmd, "--specials-file goes with --tokenizer FILE.tiktoken");
    int inputs = (a->text != NULL) + (a->file != NULL) + (a->jsonl != NULL) + (a->ids != NULL);
    if (inputs > 1) return dpb_cli_usage_error(cmd, "give at most one input option");
    if (a->reasoning && strcmp(a->reasoning, "low") && strcmp(a->reasoning, "medium") && strcmp(a->reasoning, "high"))
        return dpb_cli_usage_error(cmd, "--reasoning: '%s' is not low, medium or high", a->reasoning);
    if (a->date) {
        const char *d = a->date;
        bool ok = strlen(d) == 10 && d[4] == '-' && d[7] == '-';
        for (int k = 0; ok && k < 10; k++)
            if (k != 4 && k != 7 && (d[k] < '0' || d[k] > '9')) ok = false;
        if (!ok) return dpb_cli_usage_error(cmd, "--date: '%s' is not YYYY-MM-DD", d);
    }
    if (a->chat_template) {
        dpb_chat_template tpl;
        if (dpb_chat_template_parse(a->chat_template, &tpl)) return dpb_cli_usage_error(cmd, "--chat-template: %s", dpb_error_message());
    }
    return -1; /* ok */
}

int dpb_cmd_tokenize(int argc, char **argv)
{
    tok_args a;
    bool help;
    int rc = parse_common("tokenize", argc, argv, &a, &help);
    if (help) {
        fputs(k_tok_help, stdout);
        return 0;
    }
    if (rc >= 0) return rc;
    if (a.ids) return dpb_cli_usage_error("tokenize", "--ids belongs to detokenize");
    if (a.skip_special || a.stream) return dpb_cli_usage_error("tokenize", "--skip-special and --stream belong to detokenize");
    if (a.bench) {
        if (a.text || a.file || a.jsonl || a.chat || a.exact >= 0)
            return dpb_cli_usage_error("tokenize", "--bench takes no other input");
        return run_bench(&a);
    }
    if (a.source && a.exact < 0) return dpb_cli_usage_error("tokenize", "--source goes with --exact-tokens");
    dpb_tokenizer *t;
    dpb_status st = open_tokenizer(&a, &t);
    if (st) return dpb_cli_fail("tokenize", st);
    if (a.exact >= 0) {
        if (a.text || a.file || a.jsonl || a.chat)
            rc = dpb_cli_usage_error("tokenize", "--exact-tokens builds its own input; drop --text/--file/--jsonl/--chat");
        else rc = run_exact(&a, t);
        dpb_tokenizer_free(t);
        return rc;
    }
    dpb_tokens tk = {0};
    rc = 0;
    if (a.jsonl) {
        char *all;
        size_t len;
        if ((st = dpb_file_read(a.jsonl, MAX_INPUT, &all, &len))) {
            dpb_tokenizer_free(t);
            return dpb_cli_fail("tokenize", st);
        }
        size_t lineno = 0;
        for (char *line = all; line && line < all + len;) {
            char *nl = memchr(line, '\n', (size_t)(all + len - line));
            if (nl) *nl = 0;
            lineno++;
            size_t ll = strlen(line);
            bool blank = true;
            for (size_t k = 0; k < ll; k++)
                if (line[k] != ' ' && line[k] != '\r' && line[k] != '\t') blank = false;
            if (!blank) {
                char what[1100];
                snprintf(what, sizeof what, "%s line %zu", a.jsonl, lineno);
                cJSON *o;
                const char *txt;
                if ((st = dpb_json_parse(line, ll, what, &o))) break;
                st = dpb_json_get_string(o, "text", what, DPB_JSON_REQUIRED, NULL, &txt, NULL);
                if (!st) st = encode_input(t, &a, txt, strlen(txt), &tk);
                cJSON_Delete(o);
                if (st) {
                    dpb_error_prefix(st, "%s", what);
                    break;
                }
                cJSON *r = cJSON_CreateObject();
                if (a.count) cJSON_AddNumberToObject(r, "count", (double)tk.n);
                else print_ids_json(r, "ids", tk.ids, tk.n);
                print_json(r, false);
            }
            line = nl ? nl + 1 : NULL;
        }
        free(all);
    } else {
        char *text;
        size_t len;
        if (a.text) {
            text = strdup(a.text);
            len = strlen(a.text);
            if (!text) st = dpb_error_set(DPB_E_NOMEM, "out of memory");
        } else if (a.file) st = dpb_file_read(a.file, MAX_INPUT, &text, &len);
        else st = read_stdin(&text, &len);
        if (!st) {
            st = encode_input(t, &a, text, len, &tk);
            free(text);
        }
        if (!st) {
            if (a.json) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddNumberToObject(o, "count", (double)tk.n);
                if (!a.count) print_ids_json(o, "ids", tk.ids, tk.n);
                print_json(o, false);
            } else if (a.count) printf("%zu\n", tk.n);
            else print_ids_plain(tk.ids, tk.n);
        }
    }
    if (st) rc = dpb_cli_fail("tokenize", st);
    dpb_tokens_free(&tk);
    dpb_tokenizer_free(t);
    return rc;
}

/* Parses ids separated by spaces, commas, newlines or brackets. */
static dpb_status parse_ids(const char *s, const char *what, dpb_tokens *out)
{
    out->n = 0;
    const char *p = s;
    size_t idx = 0;
    while (*p) {
        if (*p == ' ' || *p == ',' || *p == '\n' || *p == '\r' || *p == '\t' || *p == '[' || *p == ']') {
            p++;
            continue;
        }
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < -2147483648ll || v > 2147483647ll)
            return dpb_error_set(DPB_E_ARG, "%s: item %zu ('%.20s') is not a token id", what, idx, p);
        if (out->n == out->cap) {
            size_t nc = out->cap ? out->cap * 2 : 256;
            int32_t *q = realloc(out->ids, nc * sizeof *q);
            if (!q) return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", what);
            out->ids = q;
            out->cap = nc;
        }
        out->ids[out->n++] = (int32_t)v;
        idx++;
        p = end;
    }
    return DPB_OK;
}

int dpb_cmd_detokenize(int argc, char **argv)
{
    tok_args a;
    bool help;
    int rc = parse_common("detokenize", argc, argv, &a, &help);
    if (help) {
        fputs(k_detok_help, stdout);
        return 0;
    }
    if (rc >= 0) return rc;
    if (a.text || a.bench || a.chat || a.exact >= 0 || a.count || a.specials)
        return dpb_cli_usage_error("detokenize", "--text, --bench, --chat, --exact-tokens, --count and --specials belong to tokenize");
    dpb_tokenizer *t;
    dpb_status st = open_tokenizer(&a, &t);
    if (st) return dpb_cli_fail("detokenize", st);
    dpb_tokens ids = {0};
    char *all = NULL;
    size_t len = 0;
    if (a.ids) all = strdup(a.ids);
    else if (a.file) st = dpb_file_read(a.file, MAX_INPUT, &all, &len);
    else if (a.jsonl) st = dpb_file_read(a.jsonl, MAX_INPUT, &all, &len);
    else st = read_stdin(&all, &len);
    if (!st && !all) st = dpb_error_set(DPB_E_NOMEM, "out of memory");
    if (!st && a.jsonl) {
        size_t lineno = 0;
        for (char *line = all; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = 0;
            lineno++;
            if (*line && strspn(line, " \r\t") != strlen(line)) {
                char what[1100];
                snprintf(what, sizeof what, "%s line %zu", a.jsonl, lineno);
                cJSON *o;
                if ((st = dpb_json_parse(line, strlen(line), what, &o))) break;
                const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "ids"), *e;
                if (!cJSON_IsArray(arr)) st = dpb_error_set(DPB_E_FORMAT, "%s: \"ids\" missing or not an array", what);
                ids.n = 0;
                cJSON_ArrayForEach(e, arr)
                {
                    if (st) break;
                    int64_t v;
                    if ((st = dpb_json_item_int(e, what, "ids", INT32_MIN, INT32_MAX, &v))) break;
                    if (ids.n == ids.cap) {
                        size_t nc = ids.cap ? ids.cap * 2 : 256;
                        int32_t *q = realloc(ids.ids, nc * sizeof *q);
                        if (!q) {
                            st = dpb_error_set(DPB_E_NOMEM, "out of memory");
                            break;
                        }
                        ids.ids = q;
                        ids.cap = nc;
                    }
                    ids.ids[ids.n++] = (int32_t)v;
                }
                cJSON_Delete(o);
                if (st) break;
                char *txt;
                size_t tl;
                if ((st = dpb_tokenizer_decode(t, ids.ids, ids.n, a.skip_special, &txt, &tl))) {
                    dpb_error_prefix(st, "%s", what);
                    break;
                }
                cJSON *r = cJSON_CreateObject();
                cJSON_AddStringToObject(r, "text", txt);
                print_json(r, false);
                free(txt);
            }
            line = nl ? nl + 1 : NULL;
        }
    } else if (!st) {
        st = parse_ids(all, a.ids ? "--ids" : a.file ? a.file : "stdin", &ids);
        if (!st && a.stream) {
            dpb_tokenizer_stream s;
            dpb_tokenizer_stream_init(&s, t, a.skip_special);
            for (size_t i = 0; i <= ids.n && !st; i++) {
                const char *p;
                size_t pl;
                st = i < ids.n ? dpb_tokenizer_stream_push(&s, ids.ids[i], &p, &pl) : dpb_tokenizer_stream_finish(&s, &p, &pl);
                if (st) {
                    if (i < ids.n) dpb_error_prefix(st, "id #%zu", i);
                    break;
                }
                char *tmp = malloc(pl + 1);
                if (!tmp) {
                    st = dpb_error_set(DPB_E_NOMEM, "out of memory");
                    break;
                }
                memcpy(tmp, p, pl);
                tmp[pl] = 0;
                cJSON *js = cJSON_CreateString(tmp);
                char *q = cJSON_PrintUnformatted(js);
                if (i < ids.n) printf("%d\t%s\n", ids.ids[i], q);
                else printf("end\t%s\n", q);
                cJSON_free(q);
                cJSON_Delete(js);
                free(tmp);
            }
            dpb_tokenizer_stream_free(&s);
        } else if (!st) {
            char *txt;
            size_t tl;
            st = dpb_tokenizer_decode(t, ids.ids, ids.n, a.skip_special, &txt, &tl);
            if (!st) {
                if (a.json) {
                    cJSON *o = cJSON_CreateObject();
                    cJSON_AddStringToObject(o, "text", txt);
                    print_json(o, false);
                } else {
                    fwrite(txt, 1, tl, stdout);
                    if (isatty(STDOUT_FILENO)) putchar('\n');
                }
                free(txt);
            }
        }
    }
    if (st) rc = dpb_cli_fail("detokenize", st);
    else rc = 0;
    free(all);
    dpb_tokens_free(&ids);
    dpb_tokenizer_free(t);
    return rc;
}
