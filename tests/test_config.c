/* config.json, generation_config.json and tokenizer_config.json readers. */
#include "t.h"
#include "format/config.h"

static dpb_status parse(const char *json, dpb_model_config *c)
{
    return dpb_config_parse(json, strlen(json), "config.json", c);
}

static void test_published_gpt_oss(void)
{
    const char *sh = t_shared();
    if (!sh) T_SKIP("../shared absent: real configs not available");
    char path[512];
    snprintf(path, sizeof path, "%s/data/configs/gpt-oss-20b/config.json", sh);
    dpb_model_config c;
    dpb_status st = dpb_config_load(path, &c);
    T_CHECKF(st == DPB_OK, "%s", dpb_error_message());
    T_CHECK(c.arch == DPB_ARCH_GPT_OSS);
    T_CHECK(c.hidden_size == 2880 && c.num_layers == 24 && c.num_heads == 64 && c.num_kv_heads == 8);
    T_CHECK(c.head_dim == 64 && c.num_experts == 32 && c.experts_per_tok == 4);
    T_CHECK(c.experts_format == DPB_EXPERTS_MXFP4);
    T_CHECK(c.rope.type == DPB_ROPE_YARN && c.rope.factor == 32.0 && c.rope.theta == 150000.0);
    T_CHECK(c.rope.truncate == false && c.rope.original_max_position == 4096);
    T_CHECK(c.sliding_window == 128 && c.num_sliding_layers == 12 && c.layer_sliding[0] == 1 && c.layer_sliding[1] == 0);
    T_CHECK(c.attention_bias && !c.tie_word_embeddings && c.swiglu_limit == 7.0);
    T_CHECK(c.n_eos == 1 && c.eos_ids[0] == 200002);
}

static void test_published_dense(void)
{
    const char *sh = t_shared();
    if (!sh) T_SKIP("../shared absent: real configs not available");
    char path[512];
    dpb_model_config c;
    snprintf(path, sizeof path, "%s/data/configs/qwen3-32b/config.json", sh);
    T_CHECKF(dpb_config_load(path, &c) == DPB_OK, "%s", dpb_error_message());
    T_CHECK(c.arch == DPB_ARCH_QWEN3 && c.head_dim == 128 && c.num_layers == 64 && c.intermediate_size == 25600);
    T_CHECK(c.rope.type == DPB_ROPE_DEFAULT && c.rope.theta == 1e6 && c.num_sliding_layers == 0);
    snprintf(path, sizeof path, "%s/data/configs/yi-1.5-34b-dolphin-2.9.1/config.json", sh);
    T_CHECKF(dpb_config_load(path, &c) == DPB_OK, "%s", dpb_error_message());
    T_CHECK(c.arch == DPB_ARCH_LLAMA && c.head_dim == 128 && c.num_heads == 56 && c.vocab_size == 64000);
    T_CHECK(c.rope.theta == 5e6);
}

static void test_transformers5_form(void)
{
    const char *sh = t_shared();
    if (!sh) T_SKIP("../shared absent: fixtures not available");
    char path[512];
    dpb_model_config c;
    snprintf(path, sizeof path, "%s/fixtures/gpt-oss-tiny-bf16/config.json", sh);
    T_CHECKF(dpb_config_load(path, &c) == DPB_OK, "%s", dpb_error_message());
    T_CHECK(c.rope.type == DPB_ROPE_YARN && c.rope.theta == 150000.0 && c.rope.factor == 32.0 && !c.rope.truncate);
    T_CHECK(c.experts_format == DPB_EXPERTS_BF16 && c.sliding_window == 8);
    snprintf(path, sizeof path, "%s/fixtures/gpt-oss-tiny-mxfp4/config.json", sh);
    T_CHECKF(dpb_config_load(path, &c) == DPB_OK, "%s", dpb_error_message());
    T_CHECK(c.experts_format == DPB_EXPERTS_MXFP4);
    snprintf(path, sizeof path, "%s/fixtures/llama-tiny/config.json", sh);
    T_CHECKF(dpb_config_load(path, &c) == DPB_OK, "%s", dpb_error_message());
    T_CHECK(c.rope.theta == 5e6 && c.head_dim == 32 && c.n_eos == 1 && c.eos_ids[0] == 2 && c.bos_token_id == 1);
}

static void test_head_dim_default(void)
{
    dpb_model_config c;
    T_CHECK(parse("{\"model_type\":\"llama\",\"vocab_size\":100,\"hidden_size\":64,\"intermediate_size\":128,"
                  "\"num_hidden_layers\":2,\"num_attention_heads\":4}", &c) == DPB_OK);
    T_CHECK(c.head_dim == 16 && c.num_kv_heads == 4 && c.rope.theta == 10000.0);
}

static void expect_error(const char *json, dpb_status want, const char *needle)
{
    dpb_model_config c;
    dpb_status st = parse(json, &c);
    T_CHECKF(st == want, "status %d, want %d (%s)", st, want, dpb_error_message());
    T_CHECKF(strstr(dpb_error_message(), needle) != NULL, "message '%s' lacks '%s'", dpb_error_message(), needle);
    T_CHECKF(strstr(dpb_error_message(), "config.json") != NULL, "message '%s' names no file", dpb_error_message());
}

#define BASE "\"vocab_size\":100,\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2"

static void test_bad_configs(void)
{
    expect_error("{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":5}", DPB_E_FORMAT, "does not divide");
    expect_error("{\"model_type\":\"llama\",\"vocab_size\":100,\"hidden_size\":0,\"intermediate_size\":128,"
                 "\"num_hidden_layers\":2,\"num_attention_heads\":4}", DPB_E_RANGE, "hidden_size");
    expect_error("{\"model_type\":\"llama\",\"vocab_size\":100,\"hidden_size\":-64,\"intermediate_size\":128,"
                 "\"num_hidden_layers\":2,\"num_attention_heads\":4}", DPB_E_RANGE, "hidden_size");
    expect_error("{\"model_type\":\"llama\",\"vocab_size\":1099511627776,\"hidden_size\":64,\"intermediate_size\":128,"
                 "\"num_hidden_layers\":2,\"num_attention_heads\":4}", DPB_E_RANGE, "vocab_size");
    expect_error("{\"model_type\":\"mamba\"," BASE ",\"num_attention_heads\":4}", DPB_E_UNSUPPORTED, "unknown architecture");
    expect_error("{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4,}", DPB_E_FORMAT, "invalid JSON");
    expect_error("{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4.5}", DPB_E_FORMAT, "num_attention_heads");
    expect_error("{\"model_type\":\"llama\"," BASE "}", DPB_E_FORMAT, "num_attention_heads");
    expect_error("{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4,\"num_key_value_heads\":3}", DPB_E_FORMAT,
                 "num_key_value_heads");
    expect_error("{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4,\"layer_types\":[\"full_attention\"]}",
                 DPB_E_FORMAT, "layer_types");
    expect_error("[1,2]", DPB_E_FORMAT, "object");
    expect_error("{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4} x", DPB_E_FORMAT, "trailing");
    expect_error("{\"model_type\":\"gpt_oss\"," BASE ",\"num_attention_heads\":4,\"num_local_experts\":4,"
                 "\"num_experts_per_tok\":8,\"sliding_window\":4}", DPB_E_RANGE, "num_experts_per_tok");
    expect_error("{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4,\"rope_scaling\":{\"rope_type\":\"dynamic\",\"factor\":2}}",
                 DPB_E_UNSUPPORTED, "rope_type");
    const char bad_utf8[] = "{\"model_type\":\"ll\xff\"}";
    dpb_model_config c;
    T_CHECK(dpb_config_parse(bad_utf8, strlen(bad_utf8), "config.json", &c) == DPB_E_FORMAT);
    T_CHECK(strstr(dpb_error_message(), "UTF-8") != NULL);
}

static void test_roundtrip_published_form(void)
{
    dpb_model_config a, b;
    T_CHECK(parse("{\"model_type\":\"gpt_oss\",\"vocab_size\":512,\"hidden_size\":128,\"intermediate_size\":128,"
                  "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":32,"
                  "\"num_local_experts\":8,\"num_experts_per_tok\":4,\"sliding_window\":8,"
                  "\"layer_types\":[\"sliding_attention\",\"full_attention\"],"
                  "\"rope_parameters\":{\"rope_type\":\"yarn\",\"rope_theta\":150000,\"factor\":32,\"beta_fast\":32,"
                  "\"beta_slow\":1,\"original_max_position_embeddings\":4096,\"truncate\":false},"
                  "\"quantization_config\":{\"quant_method\":\"mxfp4\"},\"eos_token_id\":[1,2]}", &a) == DPB_OK);
    char *s = NULL;
    T_CHECK(dpb_config_to_json(&a, &s) == DPB_OK);
    T_CHECK(s && strstr(s, "\"rope_scaling\"") && strstr(s, "\"rope_theta\""));
    T_CHECK(dpb_config_parse(s, strlen(s), "roundtrip", &b) == DPB_OK);
    T_CHECK(b.rope.type == a.rope.type && b.rope.factor == a.rope.factor && b.rope.truncate == a.rope.truncate);
    T_CHECK(b.experts_format == DPB_EXPERTS_MXFP4 && b.n_eos == 2 && b.eos_ids[1] == 2);
    T_CHECK(memcmp(a.layer_sliding, b.layer_sliding, sizeof a.layer_sliding) == 0);
    free(s);
}

static void test_generation_config(void)
{
    const char *sh = t_shared();
    if (!sh) T_SKIP("../shared absent");
    char path[512];
    snprintf(path, sizeof path, "%s/data/configs/qwen3-32b/generation_config.json", sh);
    FILE *f = fopen(path, "rb");
    T_CHECK(f != NULL);
    if (!f) return;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    dpb_generation_config g;
    T_CHECKF(dpb_generation_config_parse(buf, n, path, &g) == DPB_OK, "%s", dpb_error_message());
    T_CHECK(g.n_eos == 2 && g.eos_ids[0] == 151645 && g.eos_ids[1] == 151643);
    T_CHECK(g.top_k == 20 && fabs(g.top_p - 0.95) < 1e-12 && fabs(g.temperature - 0.6) < 1e-12 && g.do_sample);
}

static void test_tokenizer_config(void)
{
    const char *j = "{\"bos_token\":{\"content\":\"<s>\",\"lstrip\":false},\"eos_token\":\"</s>\","
                    "\"chat_template\":\"{% for m in messages %}{{ m.content }}{% endfor %}\",\"model_max_length\":1e30}";
    dpb_tokenizer_config tc;
    T_CHECK(dpb_tokenizer_config_parse(j, strlen(j), "tokenizer_config.json", &tc) == DPB_OK);
    T_CHECK(tc.bos_token && strcmp(tc.bos_token, "<s>") == 0 && tc.eos_token && strcmp(tc.eos_token, "</s>") == 0);
    T_CHECK(tc.chat_template && strstr(tc.chat_template, "messages"));
    T_CHECK(tc.model_max_length == 0);
    dpb_tokenizer_config_free(&tc);
}

int main(void)
{
    T_RUN(test_published_gpt_oss);
    T_RUN(test_published_dense);
    T_RUN(test_transformers5_form);
    T_RUN(test_head_dim_default);
    T_RUN(test_bad_configs);
    T_RUN(test_roundtrip_published_form);
    T_RUN(test_generation_config);
    T_RUN(test_tokenizer_config);
    return t_done();
}
