/* The governance table: license, usage policy, model card link and stated
 * safety features, read from a model folder (README.md front matter and
 * headings, LICENSE, USAGE_POLICY, config.json) and/or a user metadata JSON.
 *
 * Each field records its value, where it came from, and whether someone
 * verified it: values read from files or found by heuristics are
 * "unverified" unless the metadata JSON lists the field under "verified"
 * (a person checked it).  Metadata JSON (all keys optional):
 *   {"license": "...", "usage_policy": "...", "model_card": "...",
 *    "safety_features": "...", "verified": ["license", ...]}
 * Metadata values override what the folder says. */
#ifndef DPB_SAFETY_GOVERNANCE_H
#define DPB_SAFETY_GOVERNANCE_H

#include <stdbool.h>
#include <cjson/cJSON.h>
#include "core/status.h"

enum { DPB_GOV_LICENSE = 0, DPB_GOV_USAGE_POLICY, DPB_GOV_MODEL_CARD, DPB_GOV_SAFETY_FEATURES, DPB_GOV_ARCH, DPB_GOV_N };

typedef struct dpb_gov_field {
    char *value;   /* NULL: not found */
    char *source;  /* "README.md front matter", "metadata.json", ... */
    bool verified;
} dpb_gov_field;

typedef struct dpb_governance {
    dpb_gov_field f[DPB_GOV_N];
} dpb_governance;

const char *dpb_gov_field_name(int i); /* license, usage_policy, model_card, safety_features, architecture */

/* Either argument may be NULL. A missing folder file is not an error; a
 * metadata file that is missing or malformed is (naming it). */
dpb_status dpb_governance_read(const char *model_dir, const char *metadata_path, dpb_governance *out);
void dpb_governance_free(dpb_governance *g);
/* {field: {value, source, verified}} */
cJSON *dpb_governance_json(const dpb_governance *g);

#endif
