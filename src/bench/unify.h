/* deploybench unify and ape: the study's cross-model tables from results
 * folders written by latency, memory and energy.
 *
 * unify writes unified_latency_comparison.csv, unified_memory_comparison.csv
 * and unified_energy_comparison.csv: the reference study's columns first
 * (filled from our measurements where an equivalent exists, else
 * "unavailable: <why>"), then ours.  docs/STUDY.md maps each column.
 *
 * ape writes ape_analysis.csv and .json: Active Parameter Efficiency, metric
 * / active parameters in billions, with the active count computed from each
 * model's checkpoint (models/inspect.h), never hard-coded. */
#ifndef DPB_BENCH_UNIFY_H
#define DPB_BENCH_UNIFY_H

#include <stddef.h>
#include <cjson/cJSON.h>
#include "core/status.h"

/* The rows of each kind found in the folders (each row carries model, model_short,
 * model_type, device and results_dir); arrays the caller deletes. */
typedef struct dpb_study_rows {
    cJSON *latency, *memory, *energy;
} dpb_study_rows;

/* Reads every folder (its manifest.json and whichever of summary.json,
 * memory.json, energy_summary.json it holds).  A folder with none is an error naming it. */
dpb_status dpb_study_rows_load(const char *const *dirs, size_t n, dpb_study_rows *out);
void dpb_study_rows_free(dpb_study_rows *r);

/* Writes the three unified CSVs into out_dir (created). */
dpb_status dpb_unify_write(const dpb_study_rows *rows, const char *out_dir);

/* Column names, in order (NULL-terminated; filled by dpb_unify_write). */
extern const char *dpb_unified_latency_columns[];
extern const char *dpb_unified_memory_columns[];
extern const char *dpb_unified_energy_columns[];

/* APE rows, one per (model, context): see ape.c.  *out is an array. */
dpb_status dpb_ape_compute(const dpb_study_rows *rows, cJSON **out);
dpb_status dpb_ape_write(const cJSON *ape, const char *out_dir);
extern const char *const dpb_ape_columns[];

#endif
