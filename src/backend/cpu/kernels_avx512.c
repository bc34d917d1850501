/* AVX-512 kernel set (placeholder until written: returns NULL, so dispatch
 * falls back to AVX2). */
#include "backend/cpu/cpu_internal.h"

const dpb_cpu_kernels *dpb_cpu_kernels_avx512(void) { return NULL; }
