#include "tokenizer/chat_choose.h"

dpb_status dpb_chat_template_choose(const dpb_checkpoint *ck, const char *name, dpb_chat_template *out)
{
    if (name) return dpb_chat_template_parse(name, out);
    const char *dir = dpb_checkpoint_dir(ck);
    if (dir) return dpb_chat_template_detect(dir, out);
    switch (dpb_checkpoint_config(ck)->arch) {
    case DPB_ARCH_GPT_OSS: *out = DPB_CHAT_HARMONY; break;
    case DPB_ARCH_QWEN3: *out = DPB_CHAT_QWEN3; break;
    default: *out = DPB_CHAT_NONE; break;
    }
    return DPB_OK;
}
