/* simd.h - eight-float vectors for the hand-vectorised kernels (internal). */
#ifndef FV_SIMD_H
#define FV_SIMD_H

#include <string.h>

/* Hot loops get an AVX2/FMA clone where the CPU has it, plain SSE2 elsewhere. */
#if defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define FV_HOT __attribute__((target_clones("avx2,fma", "default")))
#else
#define FV_HOT
#endif

/* Eight floats as one value: GCC and clang lower this to AVX in the avx2 clone and
 * to pairs of SSE registers elsewhere. Loads and stores go through memcpy, so no
 * alignment is assumed. */
typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));

/* Macros rather than functions: a function taking or returning a 32-byte vector
 * would change the calling convention between the AVX and the default clone. */
#define LOAD8(p) __extension__({ v8f v_; memcpy(&v_, (p), sizeof v_); v_; })
#define STORE8(p, v) __extension__({ v8f s_ = (v); memcpy((p), &s_, sizeof s_); })
#define SPLAT8(x) ((v8f){(x), (x), (x), (x), (x), (x), (x), (x)})
/* Lane-wise select: a where a > b, else b (max) and the reverse (min). */
#define MAX8(a, b) __extension__({ v8f a_ = (a), b_ = (b); v8i m_ = a_ > b_; \
        (v8f)((m_ & (v8i)a_) | (~m_ & (v8i)b_)); })
#define MIN8(a, b) __extension__({ v8f a_ = (a), b_ = (b); v8i m_ = a_ < b_; \
        (v8f)((m_ & (v8i)a_) | (~m_ & (v8i)b_)); })

#endif
