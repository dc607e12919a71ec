/* levels.h - the CPU levels a test runs its kernels at: every level this CPU
 * and this build support (generic first), so one machine tests every path
 * below its own. */
#ifndef FV_TEST_LEVELS_H
#define FV_TEST_LEVELS_H

#include "model/kernels.h"

/* Fills out with the supported levels' kernel tables; returns how many. */
static inline int test_levels(const struct fv_kernels *out[FV_CPU_LEVEL_COUNT])
{
    int n = 0;
    for (int l = 0; l < FV_CPU_LEVEL_COUNT; l++)
        if (fv_cpu_supports((enum fv_cpu_level)l) && fv_kernels_get((enum fv_cpu_level)l))
            out[n++] = fv_kernels_get((enum fv_cpu_level)l);
    return n;
}

#endif
