/* cpu.h - what this CPU can run, detected once per process, and the kernel
 * table of each level.
 *
 *   const struct fv_cpu *cpu = fv_cpu_get();            detection, once
 *   enum fv_cpu_level level;
 *   if (fv_cpu_active(&level, &err)) ...                 FV_CPU or the best level
 *   const struct fv_kernels *k = fv_kernels_get(level);  GEMM, depthwise, pooling, ...
 *
 * Levels, from plain to fastest: generic (portable C on 4-float vectors),
 * avx2 (x86-64-v3: AVX2 + FMA + F16C), avx512 (AVX-512 F/BW/DQ/VL), avx512-bf16
 * (avx512 plus bf16 dot products), neon (ARM64). A level is "supported" when
 * this binary has its kernels and this CPU its instructions; generic always is.
 * FV_CPU=<level> in the environment forces a supported level (for tests and
 * comparisons); a level the CPU lacks is refused with a message naming what is
 * missing and what this CPU supports, never run.
 */
#ifndef FV_CPU_H
#define FV_CPU_H

#include "model/status.h"

enum fv_cpu_level {
    FV_CPU_GENERIC,
    FV_CPU_AVX2,
    FV_CPU_AVX512,
    FV_CPU_AVX512_BF16,
    FV_CPU_NEON,
    FV_CPU_LEVEL_COUNT
};

struct fv_cpu {
    char model[64];             /* "AMD EPYC 9R14", or the architecture where unknown */
    const char *arch;           /* "x86_64", "aarch64", ... */
    unsigned supported;         /* bit (1 << level) for each level this CPU can run */
    enum fv_cpu_level best;     /* the fastest supported level */
};

/* The process's CPU, detected on first use (thread-safe, never fails). */
const struct fv_cpu *fv_cpu_get(void);

/* "generic", "avx2", "avx512", "avx512-bf16", "neon"; "?" out of range. */
const char *fv_cpu_level_name(enum fv_cpu_level level);
/* The level of a name; FV_ERR_INVALID_ARG naming the levels when unknown. */
enum fv_status fv_cpu_level_parse(const char *name, enum fv_cpu_level *level,
                                  struct fv_error *err);
int fv_cpu_supports(enum fv_cpu_level level);
/* FV_ERR_UNSUPPORTED with a message when this CPU (or this build) lacks level. */
enum fv_status fv_cpu_check(enum fv_cpu_level level, struct fv_error *err);

/* The level kernels run at unless a caller picks one: $FV_CPU when set (it
 * must name a supported level, else the error says why), the best otherwise.
 * Read once per process. */
enum fv_status fv_cpu_active(enum fv_cpu_level *level, struct fv_error *err);
/* The active level, or generic when $FV_CPU is invalid (for display and for
 * callers that cannot report an error; model loading reports it). */
enum fv_cpu_level fv_cpu_active_level(void);

/* The supported levels, plainest first, as a space-separated list. */
const char *fv_cpu_supported_names(void);

/* The BLAS library and its build configuration (OpenBLAS's config string). */
const char *fv_cpu_blas_name(void);

#endif
