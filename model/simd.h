/* simd.h - eight-float vectors for the hand-vectorised kernels (internal). */
#ifndef FV_SIMD_H
#define FV_SIMD_H

#include <string.h>

/* Eight floats as one value, for the light element-wise loops outside the
 * kernel tables: GCC and clang lower this to pairs of SSE registers on x86-64
 * (NEON on ARM64). Loads and stores go through memcpy, so no alignment is
 * assumed. The hot kernels are the CPU level's (model/kern/). */
typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));

/* Macros rather than functions: a function taking or returning a 32-byte vector
 * would depend on whether AVX is enabled for its calling convention. */
#define LOAD8(p) __extension__({ v8f v_; memcpy(&v_, (p), sizeof v_); v_; })
#define STORE8(p, v) __extension__({ v8f s_ = (v); memcpy((p), &s_, sizeof s_); })
#define SPLAT8(x) ((v8f){(x), (x), (x), (x), (x), (x), (x), (x)})
/* Lane-wise select: a where a > b, else b (max) and the reverse (min). */
#define MAX8(a, b) __extension__({ v8f a_ = (a), b_ = (b); v8i m_ = a_ > b_; \
        (v8f)((m_ & (v8i)a_) | (~m_ & (v8i)b_)); })
#define MIN8(a, b) __extension__({ v8f a_ = (a), b_ = (b); v8i m_ = a_ < b_; \
        (v8f)((m_ & (v8i)a_) | (~m_ & (v8i)b_)); })

#endif
