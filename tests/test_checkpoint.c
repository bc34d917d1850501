/* Model folders: fixtures, sharded folders built here, and the errors of
 * broken folders. */
#include "t.h"
#include <sys/stat.h>
#include "core/file.h"
#include "format/checkpoint.h"
#include "format/safetensors.h"

static const char *k_fixtures[] = {"gpt-oss-tiny-bf16", "gpt-oss-tiny-mxfp4", "qwen3-tiny", "llama-tiny"};
static const size_t k_counts[] = {71, 79, 47, 39};

static void test_fixtures_open(void)
{
    const char *sh = t_shared();
    if (!sh) T_SKIP("../shared absent: fixtures not available");
    for (size_t f = 0; f < 4; f++) {
        char dir[512], path[600];
        snprintf(dir, sizeof dir, "%s/fixtures/%s", sh, k_fixtures[f]);
        dpb_checkpoint *ck = NULL;
        dpb_status st = dpb_checkpoint_open(dir, NULL, &ck);
        T_CHECKF(st == DPB_OK, "%s: %s", k_fixtures[f], dpb_error_message());
        if (st) continue;
        T_CHECKF(dpb_checkpoint_tensor_count(ck) == k_counts[f], "%s: %zu tensors", k_fixtures[f],
                 dpb_checkpoint_tensor_count(ck));
        const dpb_tensor *t = dpb_checkpoint_get(ck, "model.embed_tokens.weight");
        T_CHECK(t && t->ndim == 2 && t->shape[0] == 512 && t->shape[1] == 128 && t->dtype == DPB_DT_BF16);
        t = dpb_checkpoint_get(ck, "model.layers.0.self_attn.q_proj.weight");
        T_CHECK(t && t->ndim == 2 && t->shape[0] == 128 && t->shape[1] == 128);
        t = dpb_checkpoint_get(ck, "model.layers.3.self_attn.k_proj.weight");
        T_CHECK(t && t->ndim == 2 && t->shape[0] == 64 && t->shape[1] == 128);
        /* Weight bytes = file size - 8 - header length. */
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        dpb_safetensors_file sf;
        T_CHECK(dpb_safetensors_open(path, &sf) == DPB_OK);
        T_CHECKF(dpb_checkpoint_weight_bytes(ck) == sf.map.size - sf.hdr.data_offset, "%s: %llu vs %llu",
                 k_fixtures[f], (unsigned long long)dpb_checkpoint_weight_bytes(ck),
                 (unsigned long long)(sf.map.size - sf.hdr.data_offset));
        dpb_safetensors_close(&sf);
        T_CHECK(dpb_checkpoint_config(ck)->hidden_size == 128);
        T_CHECK(!dpb_checkpoint_is_synthetic(ck) && strcmp(dpb_checkpoint_dir(ck), dir) == 0);
        dpb_checkpoint_close(ck);
    }
}

int main(void)
{
    T_RUN(test_fixtures_open);
    return t_done();
}
