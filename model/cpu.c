/* cpu.c - CPU detection and the level kernels run at (see cpu.h). */
#include "model/cpu.h"

#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#define FV_CPU_ARCH "x86_64"
#elif defined(__aarch64__)
#include <sys/auxv.h>
#define FV_CPU_ARCH "aarch64"
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#else
#define FV_CPU_ARCH "unknown"
#endif

static const char *const level_names[FV_CPU_LEVEL_COUNT] = {"generic", "avx2", "avx512",
                                                            "avx512-bf16", "neon"};
/* What each level needs, for the refusal message. */
static const char *const level_needs[FV_CPU_LEVEL_COUNT] = {
    "nothing", "AVX2, FMA and F16C (x86-64-v3)", "AVX-512 F, BW, DQ and VL",
    "AVX-512 F, BW, DQ, VL and BF16", "an ARM64 CPU with Advanced SIMD (NEON)"};

static struct fv_cpu cpu;
static enum fv_cpu_level active;
static struct fv_error active_err;
static char supported_names[80];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t'))
        s[--n] = 0;
    size_t lead = strspn(s, " \t");
    memmove(s, s + lead, strlen(s + lead) + 1);
}

/* The first /proc/cpuinfo line starting with key, or nothing. */
static void cpuinfo_field(const char *key, char *out, size_t size)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (colon && strncmp(line, key, strlen(key)) == 0) {
            snprintf(out, size, "%s", colon + 1);
            trim(out);
            break;
        }
    }
    fclose(f);
}

static enum fv_status check_level(const struct fv_cpu *c, enum fv_cpu_level level,
                                  struct fv_error *err);

static void detect(void)
{
    cpu.arch = FV_CPU_ARCH;
    cpu.supported = 1u << FV_CPU_GENERIC;
#if defined(__x86_64__)
    unsigned int brand[12] = {0};
    if ((unsigned int)__get_cpuid_max(0x80000000u, NULL) >= 0x80000004u) {
        for (unsigned int i = 0; i < 3; i++)
            __get_cpuid(0x80000002u + i, &brand[4 * i], &brand[4 * i + 1], &brand[4 * i + 2],
                        &brand[4 * i + 3]);
        memcpy(cpu.model, brand, sizeof cpu.model - 1 < sizeof brand ? sizeof cpu.model - 1
                                                                     : sizeof brand);
        trim(cpu.model);
    }
    /* From cpuid itself (compilers differ in which names __builtin_cpu_supports
     * knows): the instructions, and XCR0 for the OS saving the vector state. */
    unsigned int a = 0, b = 0, c = 0, d = 0, xcr0 = 0;
    const int osxsave = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 27));
    const int fma = c & (1u << 12), avx = c & (1u << 28), f16c = c & (1u << 29);
    if (osxsave) {
        unsigned int hi;
        __asm__ volatile("xgetbv" : "=a"(xcr0), "=d"(hi) : "c"(0));
    }
    unsigned int b7 = 0, a7_1 = 0;
    if ((unsigned int)__get_cpuid_max(0, NULL) >= 7u) {
        __cpuid_count(7, 0, a, b7, c, d);
        __cpuid_count(7, 1, a7_1, b, c, d);
    }
    const int ymm_state = (xcr0 & 0x6u) == 0x6u, zmm_state = (xcr0 & 0xe6u) == 0xe6u;
    if (ymm_state && avx && fma && f16c && (b7 & (1u << 5)))
        cpu.supported |= 1u << FV_CPU_AVX2;
    const unsigned int avx512_fdqbwvl = (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31);
    if ((cpu.supported & (1u << FV_CPU_AVX2)) && zmm_state &&
        (b7 & avx512_fdqbwvl) == avx512_fdqbwvl) {
        cpu.supported |= 1u << FV_CPU_AVX512;
        if (a7_1 & (1u << 5))
            cpu.supported |= 1u << FV_CPU_AVX512_BF16;
    }
#elif defined(__aarch64__)
    char implementer[16] = "", part[16] = "";
    cpuinfo_field("CPU implementer", implementer, sizeof implementer);
    cpuinfo_field("CPU part", part, sizeof part);
    if (implementer[0])
        snprintf(cpu.model, sizeof cpu.model, "ARM64 implementer %s part %s", implementer, part);
    if (getauxval(AT_HWCAP) & HWCAP_ASIMD)
        cpu.supported |= 1u << FV_CPU_NEON;
#endif
    if (!cpu.model[0])
        cpuinfo_field("model name", cpu.model, sizeof cpu.model);
    if (!cpu.model[0])
        snprintf(cpu.model, sizeof cpu.model, "%s", cpu.arch);
    cpu.best = FV_CPU_GENERIC;
    for (int l = 0; l < FV_CPU_LEVEL_COUNT; l++)
        if (cpu.supported & (1u << l))
            cpu.best = (enum fv_cpu_level)l;
    for (int l = 0; l < FV_CPU_LEVEL_COUNT; l++)
        if (cpu.supported & (1u << l)) {
            size_t used = strlen(supported_names);
            snprintf(supported_names + used, sizeof supported_names - used, "%s%s",
                     used ? " " : "", level_names[l]);
        }

    active = cpu.best;
    const char *forced = getenv("FV_CPU");
    if (forced && *forced) {
        enum fv_cpu_level level;
        if (fv_cpu_level_parse(forced, &level, &active_err) == FV_OK &&
            check_level(&cpu, level, &active_err) == FV_OK)
            active = level;
        else
            fv_error_prefix(&active_err, "FV_CPU=%s: ", forced);
    }
}

const struct fv_cpu *fv_cpu_get(void)
{
    pthread_once(&once, detect);
    return &cpu;
}

const char *fv_cpu_level_name(enum fv_cpu_level level)
{
    return (unsigned)level < FV_CPU_LEVEL_COUNT ? level_names[level] : "?";
}

enum fv_status fv_cpu_level_parse(const char *name, enum fv_cpu_level *level,
                                  struct fv_error *err)
{
    for (int l = 0; l < FV_CPU_LEVEL_COUNT; l++)
        if (name && strcmp(name, level_names[l]) == 0) {
            *level = (enum fv_cpu_level)l;
            return FV_OK;
        }
    return fv_error_set(err, FV_ERR_INVALID_ARG,
                        "unknown CPU level '%s' (levels: generic, avx2, avx512, avx512-bf16, neon)",
                        name ? name : "");
}

int fv_cpu_supports(enum fv_cpu_level level)
{
    return (unsigned)level < FV_CPU_LEVEL_COUNT && (fv_cpu_get()->supported & (1u << level));
}

/* fv_cpu_check on a detected c (detect() calls it before the once completes). */
static enum fv_status check_level(const struct fv_cpu *c, enum fv_cpu_level level,
                                  struct fv_error *err)
{
    if ((unsigned)level >= FV_CPU_LEVEL_COUNT)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "unknown CPU level %d", (int)level);
    if (c->supported & (1u << level))
        return FV_OK;
    return fv_error_set(err, FV_ERR_UNSUPPORTED,
                        "this CPU (%s, %s) cannot run level %s, which needs %s; "
                        "supported here: %s",
                        c->model, c->arch, level_names[level], level_needs[level],
                        supported_names);
}

enum fv_status fv_cpu_check(enum fv_cpu_level level, struct fv_error *err)
{
    return check_level(fv_cpu_get(), level, err);
}

enum fv_status fv_cpu_active(enum fv_cpu_level *level, struct fv_error *err)
{
    fv_cpu_get();
    *level = active;
    if (active_err.status == FV_OK)
        return FV_OK;
    if (err)
        *err = active_err;
    return active_err.status;
}

enum fv_cpu_level fv_cpu_active_level(void)
{
    fv_cpu_get();
    return active_err.status == FV_OK ? active : FV_CPU_GENERIC;
}

const char *fv_cpu_supported_names(void)
{
    fv_cpu_get();
    return supported_names;
}

const char *fv_cpu_blas_name(void)
{
    return openblas_get_config();
}
