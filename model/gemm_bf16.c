/* gemm_bf16.c - bfloat16 rounding and the packed bf16 weight layout (see gemm.h;
 * the kernel itself is the avx512 set's, in model/kern/kernels.c). */
#include "model/gemm.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PANEL 32 /* output columns per packed panel: the avx512 kernels' */

uint16_t fv_bf16_from_float(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x0040u); /* NaN stays a (quiet) NaN */
    u += 0x7fffu + ((u >> 16) & 1u);             /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

float fv_bf16_to_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

size_t fv_gemm_packed_bf16_count(int n, int k)
{
    if (n < 1 || k < 2 || k % 2 || k > FV_GEMM_BF16_MAX_K)
        return 0;
    return (size_t)(n + PANEL - 1) / PANEL * PANEL * (size_t)k;
}

/* Panel j0 holds, for each pair of inputs (2p, 2p + 1), 16 columns' pairs and then
 * the next 16 columns' pairs: the operand layout of one bf16 dot-product step. */
void fv_gemm_pack_bf16(int n, int k, const float *w, uint16_t *packed)
{
    for (int j0 = 0; j0 < n; j0 += PANEL) {
        uint16_t *panel = packed + (size_t)j0 * k;
        for (int p = 0; p < k / 2; p++)
            for (int j = 0; j < PANEL; j++)
                for (int h = 0; h < 2; h++)
                    panel[(size_t)p * 2 * PANEL + 2 * j + h] =
                        j0 + j < n ? fv_bf16_from_float(w[(size_t)(j0 + j) * k + 2 * p + h]) : 0;
    }
}

