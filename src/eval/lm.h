/* The in-process language model side of evaluations: exact loglikelihoods
 * from the engine's logits, and greedy generation with stop strings. */
#ifndef DPB_EVAL_LM_H
#define DPB_EVAL_LM_H

#include <stdbool.h>
#include <stdint.h>
#include "core/status.h"
#include "engine/engine.h"
#include "tokenizer/tokenizer.h"

/* lm-eval's _encode_pair: trailing whitespace of the context moves to the
 * continuation; ctx = encode(context), cont = encode(context + continuation)[len(ctx):].
 * flags: DPB_TOK_ALLOW_SPECIAL when the context holds a chat template. */
dpb_status dpb_eval_encode_pair(dpb_tokenizer *tok, const char *context, const char *continuation, unsigned flags,
                                dpb_tokens *ctx, dpb_tokens *cont);

typedef struct dpb_eval_ll_stats {
    int64_t forward_calls;  /* dpb_engine_forward calls */
    int64_t tokens;         /* tokens run through the model */
    int64_t truncated;      /* questions whose context was cut on the left to fit */
    int64_t prefix_tokens;  /* shared-prefix tokens put into the slots ahead of the questions' own tokens */
} dpb_eval_ll_stats;

/* Single-token questions of one call sharing at least this many leading
 * tokens get the shared part in a step of its own (see dpb_eval_loglik). */
#define DPB_EVAL_MIN_SHARED_PREFIX 16

/* Loglikelihoods of nc continuations after each of nq contexts:
 * ll[q * nc + c] = sum of log p(cont token | everything before).  When every
 * continuation of a question is one token (MMLU's " A".." D") the context is
 * run once and its last logits score all choices (the shared prefix); the
 * questions of a call share one forward step (nq <= dpb_engine_max_seqs);
 * their common token prefix (MMLU: the subject's description and exemplars)
 * runs in a step before their own tokens, the place where a KV copy from one
 * slot to the others would save its repetition (lm.c: fill_prefix).
 * Otherwise (or with exhaustive) each choice is run on its own.  Contexts
 * longer than the engine's context keep their last tokens, as lm-eval does. */
dpb_status dpb_eval_loglik(dpb_engine *e, dpb_tokenizer *tok, const char *const *contexts, int nq,
                           const char *const *conts, int nc, unsigned flags, bool exhaustive, double *ll,
                           dpb_eval_ll_stats *stats);

/* Greedy generation for n prompts at once (n <= dpb_engine_max_seqs): stops
 * at an eos id, max_new tokens, or when the text contains a stop string; the
 * outputs (owned, caller frees each) are cut before the first stop string. */
dpb_status dpb_eval_generate(dpb_engine *e, dpb_tokenizer *tok, const char *const *prompts, int n, unsigned flags,
                             int64_t max_new, const char *const *stops, int nstops, const int64_t *eos_ids, int n_eos,
                             char **outputs);

#endif
