/* The built-in curated prompt set, data/safety/builtin.jsonl, embedded at
 * build time (the assembler's .incbin; make runs from the repository root).
 * Edit the JSONL file, then touch this file to rebuild. */
#include <stddef.h>
#include "safety/sets.h"

__asm__(".section .rodata\n"
        ".balign 16\n"
        ".globl dpb_safety_builtin_start\n.hidden dpb_safety_builtin_start\n.globl dpb_safety_builtin_end\n.hidden dpb_safety_builtin_end\n"
        "dpb_safety_builtin_start:\n"
        ".incbin \"data/safety/builtin.jsonl\"\n"
        "dpb_safety_builtin_end:\n"
        ".byte 0\n"
        ".previous\n");

extern const char dpb_safety_builtin_start[], dpb_safety_builtin_end[];

const char *dpb_safety_builtin_text(size_t *len)
{
    *len = (size_t)(dpb_safety_builtin_end - dpb_safety_builtin_start);
    return dpb_safety_builtin_start;
}
