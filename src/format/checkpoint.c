/* Hugging Face model folders: config, generation and tokenizer settings, and
 * mmapped safetensors (one file, or shards listed by an index), bound to the
 * architecture's tensor list. */
#include "format/checkpoint_impl.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/checked.h"
#include "core/file.h"
#include "models/spec.h"
#include "synth/synth.h"

#define MAX_SIDE_JSON (64u << 20) /* generation/tokenizer config, index */

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const dpb_tensor *)a)->name, ((const dpb_tensor *)b)->name);
}

dpb_status dpb_checkpoint_index_tensors(dpb_checkpoint *ck)
{
    if (ck->n_tensors > 1) qsort(ck->tensors, ck->n_tensors, sizeof *ck->tensors, cmp_tensor_name);
    for (size_t i = 1; i < ck->n_tensors; i++) {
        const dpb_tensor *a = &ck->tensors[i - 1], *b = &ck->tensors[i];
        if (strcmp(a->name, b->name) == 0)
            return dpb_error_set(DPB_E_FORMAT, "%s: tensor '%.200s' is in both %s and %s", ck->dir ? ck->dir : "model",
                                 b->name, a->file ? a->file : "(memory)", b->file ? b->file : "(memory)");
    }
    return DPB_OK;
}

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* tokenizer.json, else tokenizer.model, else the first *.tiktoken by name; NULL if none. */
static dpb_status find_tokenizer_in_dir(const char *dir, char **out)
{
    *out = NULL;
    static const char *const names[] = {"tokenizer.json", "tokenizer.model"};
    for (size_t i = 0; i < 2; i++) {
        char *p;
        dpb_status st = dpb_path_join(dir, names[i], &p);
        if (st) return st;
        if (dpb_file_exists(p)) {
            *out = p;
            return DPB_OK;
        }
        free(p);
    }
    DIR *d = opendir(dir);
    if (!d) return DPB_OK;
    char *best = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l > 9 && strcmp(de->d_name + l - 9, ".tiktoken") == 0) {
            char *cand = NULL;
            if (dpb_path_join(dir, de->d_name, &cand)) {
                closedir(d);
                free(best);
                return dpb_error_set(DPB_E_NOMEM, "out of memory");
            }
            if (!dpb_file_exists(cand) || (best && cmp_cstr(&cand, &best) >= 0)) {
                free(cand);
                continue;
            }
            free(best);
            best = cand;
        }
    }
    closedir(d);
    *out = best;
    return DPB_OK;
}

dpb_status dpb_checkpoint_resolve_tokenizer(const char *arg, char **out)
{
    *out = NULL;
    if (!arg || !*arg) return dpb_error_set(DPB_E_ARG, "--tokenizer: empty path");
    if (dpb_dir_exists(arg)) {
        dpb_status st = find_tokenizer_in_dir(arg, out);
        if (st) return st;
        if (!*out)
            return dpb_error_set(DPB_E_ARG, "--tokenizer %s: folder holds no tokenizer.json, tokenizer.model or *.tiktoken",
                                 arg);
        return DPB_OK;
    }
    if (dpb_file_exists(arg)) {
        *out = strdup(arg);
        return *out ? DPB_OK : dpb_error_set(DPB_E_NOMEM, "out of memory");
    }
    return dpb_error_set(DPB_E_ARG, "--tokenizer %s: no such file or folder", arg);
}

/* Reads an optional JSON side file: *text NULL when absent. */
static dpb_status read_optional(const char *dir, const char *name, char **path, char **text, size_t *len)
{
    *text = NULL;
    dpb_status st = dpb_path_join(dir, name, path);
    if (st) return st;
    if (!dpb_file_exists(*path)) return DPB_OK;
    return dpb_file_read(*path, MAX_SIDE_JSON, text, len);
}

/* Appends the entries of shard s to ck->tensors (capacity known in advance). */
static void add_shard_tensors(dpb_checkpoint *ck, size_t s, const char *file_name)
{
    const dpb_safetensors_file *f = &ck->shards[s];
    for (size_t i = 0; i < f->hdr.count; i++) {
        const dpb_st_entry *e = &f->hdr.entries[i];
        dpb_tensor *t = &ck->tensors[ck->n_tensors++];
        memset(t, 0, sizeof *t);
        t->name = e->name;
        t->dtype = e->dtype;
        t->ndim = e->ndim;
        memcpy(t->shape, e->shape, sizeof t->shape);
        t->nbytes = e->end - e->begin;
        t->data = dpb_safetensors_data(f, e);
        t->file = file_name;
    }
}

static dpb_status alloc_tensors(dpb_checkpoint *ck)
{
    size_t total = 0;
    for (size_t s = 0; s < ck->n_shards; s++)
        if (!dpb_add_size(total, ck->shards[s].hdr.count, &total))
            return dpb_error_set(DPB_E_RANGE, "%s: too many tensors", ck->dir);
    ck->tensors = calloc(total ? total : 1, sizeof *ck->tensors);
    if (!ck->tensors) return dpb_error_set(DPB_E_NOMEM, "%s: out of memory for %zu tensors", ck->dir, total);
    return DPB_OK;
}

static int cmp_idx_by_name(const void *a, const void *b, void *ctx)
{
    char **names = ctx;
    return strcmp(names[*(const size_t *)a], names[*(const size_t *)b]);
}

/* Shards listed by an index: every shard opened once; every index entry in
 * its named shard; every shard tensor listed in the index. */
static dpb_status open_sharded(dpb_checkpoint *ck, const char *index_path)
{
    char *text = NULL;
    size_t len = 0;
    dpb_st_index ix = {0};
    size_t *order = NULL;
    dpb_status st = dpb_file_read(index_path, MAX_SIDE_JSON, &text, &len);
    if (st) return st;
    st = dpb_safetensors_index_parse(text, len, index_path, &ix);
    free(text);
    if (st) return st;
    if (ix.shard_count == 0) {
        st = dpb_error_set(DPB_E_FORMAT, "%s: weight_map lists no tensors", index_path);
        goto done;
    }
    ck->shards = calloc(ix.shard_count, sizeof *ck->shards);
    if (!ck->shards) {
        st = dpb_error_set(DPB_E_NOMEM, "%s: out of memory", index_path);
        goto done;
    }
    for (size_t s = 0; s < ix.shard_count; s++) {
        char *p;
        if ((st = dpb_path_join(ck->dir, ix.shard_files[s], &p))) goto done;
        if (!dpb_file_exists(p)) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: shard '%s' named in weight_map does not exist", index_path,
                               ix.shard_files[s]);
            free(p);
            goto done;
        }
        st = dpb_safetensors_open(p, &ck->shards[s]);
        free(p);
        if (st) goto done;
        ck->n_shards++;
    }
    if ((st = alloc_tensors(ck))) goto done;
    /* Tensor file names: the shard name as the index spells it (owned by the
     * mapping's path, which ends with it). */
    for (size_t s = 0; s < ck->n_shards; s++) {
        const char *path = ck->shards[s].map.path;
        add_shard_tensors(ck, s, path + strlen(path) - strlen(ix.shard_files[s]));
    }
    if ((st = dpb_checkpoint_index_tensors(ck))) goto done;
    /* Each index entry: present, and in the shard the index names. */
    for (size_t i = 0; i < ix.count; i++) {
        dpb_tensor key = {.name = ix.tensors[i]};
        const dpb_tensor *t = bsearch(&key, ck->tensors, ck->n_tensors, sizeof key, cmp_tensor_name);
        if (!t) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: tensor '%.200s' is not in its shard '%s'", index_path, ix.tensors[i],
                               ix.shards[i]);
            goto done;
        }
        if (strcmp(t->file, ix.shards[i]) != 0) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: tensor '%.200s' is listed in shard '%s' but stored in '%s'",
                               index_path, ix.tensors[i], ix.shards[i], t->file);
            goto done;
        }
    }
    /* Each shard tensor: listed in the index. Counts differ only if some are not. */
    if (ix.count != ck->n_tensors) {
        order = malloc(ix.count * sizeof *order);
        if (!order) {
            st = dpb_error_set(DPB_E_NOMEM, "%s: out of memory", index_path);
            goto done;
        }
        for (size_t i = 0; i < ix.count; i++) order[i] = i;
        qsort_r(order, ix.count, sizeof *order, cmp_idx_by_name, ix.tensors);
        for (size_t i = 0; i < ck->n_tensors; i++) {
            size_t lo = 0, hi = ix.count;
            bool found = false;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(ix.tensors[order[mid]], ck->tensors[i].name);
                if (c == 0) { found = true; break; }
                if (c < 0) lo = mid + 1;
                else hi = mid;
            }
            if (!found) {
                st = dpb_error_set(DPB_E_FORMAT, "%s: tensor '%.200s' in shard '%s' is not listed in the index",
                                   index_path, ck->tensors[i].name, ck->tensors[i].file);
                goto done;
            }
        }
    }
done:
    free(order);
    dpb_st_index_free(&ix);
    return st;
}

static dpb_status open_single(dpb_checkpoint *ck, const char *path)
{
    ck->shards = calloc(1, sizeof *ck->shards);
    if (!ck->shards) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    dpb_status st = dpb_safetensors_open(path, &ck->shards[0]);
    if (st) return st;
    ck->n_shards = 1;
    if ((st = alloc_tensors(ck))) return st;
    add_shard_tensors(ck, 0, "model.safetensors");
    return dpb_checkpoint_index_tensors(ck);
}

static dpb_status bind(dpb_checkpoint *ck)
{
    dpb_tensor_desc *d = calloc(ck->n_tensors ? ck->n_tensors : 1, sizeof *d);
    if (!d) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    for (size_t i = 0; i < ck->n_tensors; i++) {
        d[i].name = ck->tensors[i].name;
        d[i].dtype = ck->tensors[i].dtype;
        d[i].ndim = ck->tensors[i].ndim;
        d[i].shape = ck->tensors[i].shape;
    }
    dpb_status st = dpb_model_bind_check(&ck->cfg, d, ck->n_tensors, ck->dir);
    free(d);
    return st;
}

dpb_status dpb_checkpoint_open_dir(const char *dir, const dpb_checkpoint_opts *opts, dpb_checkpoint **out)
{
    *out = NULL;
    if (!dir || !*dir) return dpb_error_set(DPB_E_ARG, "model: empty folder name");
    if (!dpb_dir_exists(dir))
        return dpb_error_set(DPB_E_ARG, "%s: not a folder (expected a Hugging Face model folder or synth:PRESET)", dir);
    dpb_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    char *path = NULL, *text = NULL;
    size_t len = 0;
    dpb_status st;
#define TRY(x) do { if ((st = (x))) goto fail; } while (0)
    ck->dir = strdup(dir);
    if (!ck->dir) { st = dpb_error_set(DPB_E_NOMEM, "out of memory"); goto fail; }

    TRY(dpb_path_join(dir, "config.json", &path));
    if (!dpb_file_exists(path)) {
        st = dpb_error_set(DPB_E_FORMAT, "%s: config.json is missing", dir);
        goto fail;
    }
    TRY(dpb_config_load(path, &ck->cfg));
    free(path);
    path = NULL;

    TRY(read_optional(dir, "generation_config.json", &path, &text, &len));
    if (text) {
        TRY(dpb_generation_config_parse(text, len, path, &ck->gen));
        /* Fields the generation config leaves out come from config.json. */
        if (ck->gen.n_eos == 0) {
            ck->gen.n_eos = ck->cfg.n_eos;
            memcpy(ck->gen.eos_ids, ck->cfg.eos_ids, sizeof ck->gen.eos_ids);
        }
        if (ck->gen.bos_token_id < 0) ck->gen.bos_token_id = ck->cfg.bos_token_id;
        if (ck->gen.pad_token_id < 0) ck->gen.pad_token_id = ck->cfg.pad_token_id;
    } else {
        dpb_generation_config_default(&ck->cfg, &ck->gen);
    }
    free(text);
    text = NULL;
    free(path);
    path = NULL;

    TRY(read_optional(dir, "tokenizer_config.json", &path, &text, &len));
    if (text) TRY(dpb_tokenizer_config_parse(text, len, path, &ck->tokcfg));
    free(text);
    text = NULL;
    free(path);
    path = NULL;

    /* Weights: model.safetensors first (as transformers looks), else the index. */
    TRY(dpb_path_join(dir, "model.safetensors", &path));
    if (dpb_file_exists(path)) {
        TRY(open_single(ck, path));
    } else {
        free(path);
        path = NULL;
        TRY(dpb_path_join(dir, "model.safetensors.index.json", &path));
        if (!dpb_file_exists(path)) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: neither model.safetensors nor model.safetensors.index.json is present",
                               dir);
            goto fail;
        }
        TRY(open_sharded(ck, path));
    }
    free(path);
    path = NULL;

    TRY(bind(ck));

    if (opts && opts->tokenizer) TRY(dpb_checkpoint_resolve_tokenizer(opts->tokenizer, &ck->tokenizer_path));
    else TRY(find_tokenizer_in_dir(dir, &ck->tokenizer_path));
#undef TRY
    *out = ck;
    return DPB_OK;
fail:
    free(path);
    free(text);
    dpb_checkpoint_close(ck);
    return st;
}

dpb_status dpb_checkpoint_open(const char *model_arg, const dpb_checkpoint_opts *opts, dpb_checkpoint **out)
{
    *out = NULL;
    if (!model_arg) return dpb_error_set(DPB_E_ARG, "model: none given");
    if (dpb_synth_is_spec(model_arg)) return dpb_synth_open(model_arg, opts, out);
    return dpb_checkpoint_open_dir(model_arg, opts, out);
}

void dpb_checkpoint_close(dpb_checkpoint *ck)
{
    if (!ck) return;
    for (size_t i = 0; i < ck->n_shards; i++) dpb_safetensors_close(&ck->shards[i]);
    free(ck->shards);
    if (ck->names) {
        for (size_t i = 0; i < ck->n_tensors; i++) free(ck->names[i]);
        free(ck->names);
    }
    free(ck->tensors);
    free(ck->arena);
    free(ck->synth_preset);
    free(ck->dir);
    free(ck->tokenizer_path);
    dpb_tokenizer_config_free(&ck->tokcfg);
    free(ck);
}

const dpb_model_config *dpb_checkpoint_config(const dpb_checkpoint *ck) { return &ck->cfg; }
const dpb_generation_config *dpb_checkpoint_generation(const dpb_checkpoint *ck) { return &ck->gen; }
size_t dpb_checkpoint_tensor_count(const dpb_checkpoint *ck) { return ck->n_tensors; }

const dpb_tensor *dpb_checkpoint_tensor_at(const dpb_checkpoint *ck, size_t i)
{
    return i < ck->n_tensors ? &ck->tensors[i] : NULL;
}

const dpb_tensor *dpb_checkpoint_get(const dpb_checkpoint *ck, const char *name)
{
    if (!name || !ck->n_tensors) return NULL;
    dpb_tensor key = {.name = name};
    return bsearch(&key, ck->tensors, ck->n_tensors, sizeof key, cmp_tensor_name);
}

dpb_status dpb_checkpoint_find(const dpb_checkpoint *ck, const char *name, const dpb_tensor **out)
{
    *out = dpb_checkpoint_get(ck, name);
    if (!*out)
        return dpb_error_set(DPB_E_FORMAT, "%s: tensor '%.200s' not found", ck->dir ? ck->dir : "model",
                             name ? name : "(null)");
    return DPB_OK;
}

const char *dpb_checkpoint_dir(const dpb_checkpoint *ck) { return ck->synthetic ? NULL : ck->dir; }
bool dpb_checkpoint_is_synthetic(const dpb_checkpoint *ck) { return ck->synthetic; }
bool dpb_checkpoint_has_weights(const dpb_checkpoint *ck)
{
    for (size_t i = 0; i < ck->n_tensors; i++)
        if (ck->tensors[i].nbytes) return ck->tensors[i].data != NULL;
    return true;
}
const char *dpb_checkpoint_tokenizer_path(const dpb_checkpoint *ck) { return ck->tokenizer_path; }

uint64_t dpb_checkpoint_weight_bytes(const dpb_checkpoint *ck)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < ck->n_tensors; i++) sum += ck->tensors[i].nbytes;
    return sum;
}
