/* Ctrl-C handling: the first SIGINT/SIGTERM sets a flag that long loops poll
 * (so finished measurements are flushed); a second one exits at once. */
#ifndef DPB_SIGNAL_H
#define DPB_SIGNAL_H
#include <stdbool.h>
void dpb_signal_install(void);
bool dpb_interrupted(void);
#endif
