// Element-wise kernels (see include/CKernels.h): one body per kernel in kernels_isa.h, instantiated here for
// scalar C (libm), AVX2+FMA and AVX-512F (SLEEF), and dispatched at run time. The SIMD instances are compiled
// with function-level target attributes only, so the library still runs on CPUs without AVX2 or AVX-512.
#include "CKernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define CK_X86 1
#include <immintrin.h>
#endif

// ---------------------------------------------------------------------------------------------------------------
// Scalar: VW = 1, so the tail macros are never reached (they only have to compile).

#define CK_FN(name) name##_scalar
#define VF float
#define VM int
#define VW 1
#define V_ZERO 0.0f
#define V_SET1(f) (f)
#define V_LOAD(p) (*(p))
#define V_STORE(p, v) (*(p) = (v))
#define V_TAIL(k) ((int)(k))
#define V_LOADM(p, m) ((m) ? *(p) : 0.0f)
#define V_STOREM(p, m, v) ((m) ? (void)(*(p) = (v)) : (void)0)
#define V_SEL(m, a, b) ((m) ? (a) : (b))
#define V_ADD(a, b) ((a) + (b))
#define V_SUB(a, b) ((a) - (b))
#define V_MUL(a, b) ((a) * (b))
#define V_DIV(a, b) ((a) / (b))
#define V_MAX(a, b) ((a) > (b) ? (a) : (b))
#define V_FMA(a, b, c) ((a) * (b) + (c))   // no hardware FMA assumed; fmaf() would be a slow library call
#define V_HSUM(v) (v)
#define V_HMAX(v) (v)
#define V_EXP(v) expf(v)
#define V_ERF(v) erff(v)
#include "kernels_isa.h"

#ifdef CK_X86
// ---------------------------------------------------------------------------------------------------------------
// SLEEF entry points are declared below, inside each target region, because <sleef.h> only declares them when
// the whole translation unit is built with -mavx2 / -mavx512f (which we avoid), and because clang requires the
// callee of a function taking __m256/__m512 by value to carry the matching target too. We call the ISA-specific
// variants directly (no SLEEF dispatch hop); they are only reached after the CPU check further down.
#define CK_CONST __attribute__((const))

#if defined(__clang__)
#define CK_TARGET_BEGIN_AVX2 _Pragma("clang attribute push (__attribute__((target(\"avx2,fma\"))), apply_to = function)")
#define CK_TARGET_BEGIN_AVX512 _Pragma("clang attribute push (__attribute__((target(\"avx512f\"))), apply_to = function)")
#define CK_TARGET_END _Pragma("clang attribute pop")
#else   // GCC
#define CK_TARGET_BEGIN_AVX2 _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma\")")
#define CK_TARGET_BEGIN_AVX512 _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f\")")
#define CK_TARGET_END _Pragma("GCC pop_options")
#endif

// ---------------------------------------------------------------------------------------------------------------
// AVX2 + FMA: 8 lanes; masks are int32 lanes of all-ones / zero.
CK_TARGET_BEGIN_AVX2

extern __m256 Sleef_expf8_u10avx2(__m256) CK_CONST;
extern __m256 Sleef_erff8_u10avx2(__m256) CK_CONST;

static inline float ck_hsum_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline float ck_hmax_avx2(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline __m256i ck_tail_avx2(size_t k) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#define CK_FN(name) name##_avx2
#define VF __m256
#define VM __m256i
#define VW 8
#define V_ZERO _mm256_setzero_ps()
#define V_SET1(f) _mm256_set1_ps(f)
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps((p), (v))
#define V_TAIL(k) ck_tail_avx2(k)
#define V_LOADM(p, m) _mm256_maskload_ps((p), (m))
#define V_STOREM(p, m, v) _mm256_maskstore_ps((p), (m), (v))
#define V_SEL(m, a, b) _mm256_blendv_ps((b), (a), _mm256_castsi256_ps(m))
#define V_ADD(a, b) _mm256_add_ps((a), (b))
#define V_SUB(a, b) _mm256_sub_ps((a), (b))
#define V_MUL(a, b) _mm256_mul_ps((a), (b))
#define V_DIV(a, b) _mm256_div_ps((a), (b))
#define V_MAX(a, b) _mm256_max_ps((a), (b))
#define V_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define V_HSUM(v) ck_hsum_avx2(v)
#define V_HMAX(v) ck_hmax_avx2(v)
#define V_EXP(v) Sleef_expf8_u10avx2(v)
#define V_ERF(v) Sleef_erff8_u10avx2(v)
#include "kernels_isa.h"

CK_TARGET_END

// ---------------------------------------------------------------------------------------------------------------
// AVX-512F: 16 lanes; masks are __mmask16 bit masks.
CK_TARGET_BEGIN_AVX512

extern __m512 Sleef_expf16_u10avx512f(__m512) CK_CONST;
extern __m512 Sleef_erff16_u10avx512f(__m512) CK_CONST;

#define CK_FN(name) name##_avx512f
#define VF __m512
#define VM __mmask16
#define VW 16
#define V_ZERO _mm512_setzero_ps()
#define V_SET1(f) _mm512_set1_ps(f)
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps((p), (v))
#define V_TAIL(k) ((__mmask16)((1u << (k)) - 1u))
#define V_LOADM(p, m) _mm512_maskz_loadu_ps((m), (p))
#define V_STOREM(p, m, v) _mm512_mask_storeu_ps((p), (m), (v))
#define V_SEL(m, a, b) _mm512_mask_blend_ps((m), (b), (a))
#define V_ADD(a, b) _mm512_add_ps((a), (b))
#define V_SUB(a, b) _mm512_sub_ps((a), (b))
#define V_MUL(a, b) _mm512_mul_ps((a), (b))
#define V_DIV(a, b) _mm512_div_ps((a), (b))
#define V_MAX(a, b) _mm512_max_ps((a), (b))
#define V_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define V_HSUM(v) _mm512_reduce_add_ps(v)
#define V_HMAX(v) _mm512_reduce_max_ps(v)
#define V_EXP(v) Sleef_expf16_u10avx512f(v)
#define V_ERF(v) Sleef_erff16_u10avx512f(v)
#include "kernels_isa.h"

CK_TARGET_END
#endif  // CK_X86

// ---------------------------------------------------------------------------------------------------------------
// Dispatch: a table per ISA, the active one chosen on first use (or by ck_set_isa).

typedef struct {
    const char *name;
    void (*gelu_forward)(const float *, float *, size_t);
    void (*gelu_backward)(const float *, const float *, float *, size_t);
    void (*quick_gelu_forward)(const float *, float *, size_t);
    void (*quick_gelu_backward)(const float *, const float *, float *, size_t);
    void (*softmax_rows)(float *, size_t, size_t, size_t, float);
    void (*softmax_backward_rows)(const float *, float *, size_t, size_t, size_t, float);
    void (*layernorm_forward)(const float *, float *, float *, float *, const float *, const float *, size_t,
                              size_t, float);
    void (*layernorm_backward)(const float *, const float *, float *, const float *, const float *,
                               const float *, float *, float *, size_t, size_t);
    void (*thin_rows)(const float *, size_t, const float *, size_t, float *, size_t, size_t, size_t, size_t, float);
    void (*thin_outer)(float *, size_t, const float *, size_t, const float *, size_t, size_t, size_t, size_t);
} ck_impl;

#define CK_IMPL(isa)                                                                                           \
    { #isa, gelu_forward_##isa, gelu_backward_##isa, quick_gelu_forward_##isa, quick_gelu_backward_##isa,       \
      softmax_rows_##isa, softmax_backward_rows_##isa,          \
      layernorm_forward_##isa, layernorm_backward_##isa, thin_rows_##isa, thin_outer_##isa }

// Ordered from lowest to highest level.
static const ck_impl ck_impls[] = {
    CK_IMPL(scalar),
#ifdef CK_X86
    CK_IMPL(avx2),
    CK_IMPL(avx512f),
#endif
};
enum { CK_NIMPLS = sizeof ck_impls / sizeof ck_impls[0] };

static int ck_cpu_has(int level) {
#ifdef CK_X86
    __builtin_cpu_init();
    switch (level) {
    case 1: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case 2: return __builtin_cpu_supports("avx512f");
    }
#endif
    return level == 0;
}

static int ck_level_of(const char *name) {
    for (int i = 0; i < CK_NIMPLS; i++)
        if (strcmp(name, ck_impls[i].name) == 0) return i;
#ifndef CK_X86
    if (strcmp(name, "avx2") == 0 || strcmp(name, "avx512f") == 0) return CK_NIMPLS;   // known, never available
#endif
    return -1;
}

static const ck_impl *ck_default_impl(void) {
    int level = 0;
    while (level + 1 < CK_NIMPLS && ck_cpu_has(level + 1)) level++;
    const char *env = getenv("CK_ISA");
    if (env && *env) {
        int want = ck_level_of(env);
        if (want < 0)
            fprintf(stderr, "CKernels: ignoring unknown CK_ISA=%s (expected scalar, avx2 or avx512f)\n", env);
        else if (want < level)
            level = want;
    }
    return &ck_impls[level];
}

static const ck_impl *ck_active;   // accessed atomically; NULL until first use

static inline const ck_impl *ck_impl_get(void) {
    const ck_impl *impl = __atomic_load_n(&ck_active, __ATOMIC_ACQUIRE);
    if (__builtin_expect(impl == NULL, 0)) {
        impl = ck_default_impl();   // idempotent, so a race between first callers is harmless
        __atomic_store_n(&ck_active, impl, __ATOMIC_RELEASE);
    }
    return impl;
}

const char *ck_isa(void) { return ck_impl_get()->name; }

int ck_set_isa(const char *name) {
    if (name == NULL) {
        __atomic_store_n(&ck_active, ck_default_impl(), __ATOMIC_RELEASE);
        return 0;
    }
    int level = ck_level_of(name);
    if (level < 0) return -1;
    if (level >= CK_NIMPLS || !ck_cpu_has(level)) return 1;
    __atomic_store_n(&ck_active, &ck_impls[level], __ATOMIC_RELEASE);
    return 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Public entry points.

void ck_gelu_forward(const float *x, float *y, size_t n) { ck_impl_get()->gelu_forward(x, y, n); }

void ck_gelu_backward(const float *x, const float *dy, float *dx, size_t n) {
    ck_impl_get()->gelu_backward(x, dy, dx, n);
}

void ck_quick_gelu_forward(const float *x, float *y, size_t n) { ck_impl_get()->quick_gelu_forward(x, y, n); }

void ck_quick_gelu_backward(const float *x, const float *dy, float *dx, size_t n) {
    ck_impl_get()->quick_gelu_backward(x, dy, dx, n);
}

void ck_softmax_rows(float *s, size_t rows, size_t cols, size_t ld, float scale) {
    ck_impl_get()->softmax_rows(s, rows, cols, ld, scale);
}

void ck_softmax_backward_rows(const float *p, float *dp, size_t rows, size_t cols, size_t ld, float scale) {
    ck_impl_get()->softmax_backward_rows(p, dp, rows, cols, ld, scale);
}

void ck_layernorm_forward(const float *x, float *y, float *mean, float *rstd, const float *gamma,
                          const float *beta, size_t rows, size_t cols, float eps) {
    ck_impl_get()->layernorm_forward(x, y, mean, rstd, gamma, beta, rows, cols, eps);
}

void ck_layernorm_backward(const float *x, const float *dy, float *dx, const float *mean, const float *rstd,
                           const float *gamma, float *dgamma, float *dbeta, size_t rows, size_t cols) {
    ck_impl_get()->layernorm_backward(x, dy, dx, mean, rstd, gamma, dgamma, dbeta, rows, cols);
}

void ck_thin_rows(const float *x, size_t ldx, const float *w, size_t ldw, float *out, size_t ldo, size_t rows,
                  size_t k, size_t r, float alpha) {
    ck_impl_get()->thin_rows(x, ldx, w, ldw, out, ldo, rows, k, r, alpha);
}

void ck_thin_outer(float *acc, size_t lda, const float *s, size_t lds, const float *x, size_t ldx, size_t rows,
                   size_t r, size_t cols) {
    ck_impl_get()->thin_outer(acc, lda, s, lds, x, ldx, rows, r, cols);
}
