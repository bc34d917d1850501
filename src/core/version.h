#ifndef DPB_VERSION_H
#define DPB_VERSION_H
#define DPB_VERSION "0.1.0"
/* git describe of the build, "unknown" outside a checkout. */
const char *dpb_build_commit(void);
#endif
