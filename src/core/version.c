#include "core/version.h"
#ifndef DPB_COMMIT
#define DPB_COMMIT "unknown"
#endif
const char *dpb_build_commit(void) { return DPB_COMMIT; }
