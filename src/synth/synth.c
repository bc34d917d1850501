/* Placeholder so the folder reader links before the synthesizer exists; the
 * real src/synth/synth.c (written by the lead) replaces this file. */
#include "synth/synth.h"

#include <string.h>

bool dpb_synth_is_spec(const char *spec) { return spec && strncmp(spec, "synth:", 6) == 0; }

dpb_status dpb_synth_open(const char *spec, const dpb_checkpoint_opts *opts, dpb_checkpoint **out)
{
    (void)opts;
    *out = NULL;
    return dpb_error_set(DPB_E_UNSUPPORTED, "%s: synth: not built yet", spec);
}
