// Element-wise kernels of the ViT forward/backward, vectorized with SLEEF (exp, erf) and dispatched at run time
// (AVX-512F → AVX2+FMA → portable scalar). All arrays are float32, row-major, contiguous unless a stride is given.
// "rows" kernels work on `rows` independent rows of `cols` elements; callers split rows across threads.
#ifndef CKERNELS_H
#define CKERNELS_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Name of the instruction set the kernels dispatched to: "avx512f", "avx2" or "scalar".
/// Chosen once, on first use, as the best the CPU supports (AVX2 also requires FMA); the environment variable
/// CK_ISA=scalar|avx2|avx512f may lower it (a level the CPU lacks, or an unknown name, is ignored).
const char *ck_isa(void);

/// Forces the dispatch to `name` ("scalar", "avx2" or "avx512f"); NULL redoes the default choice above.
/// Returns 0 on success, 1 if the CPU lacks that instruction set, -1 if the name is unknown (nothing changes
/// on failure). Meant for tests and benchmarks: do not call it while kernels run on other threads.
int ck_set_isa(const char *name);

/// Exact GELU: y = x · Φ(x) = 0.5 · x · (1 + erf(x / √2)).   (y may alias x)
void ck_gelu_forward(const float *x, float *y, size_t n);

/// GELU backward: dx = dy · (Φ(x) + x · φ(x)),  φ(x) = exp(−x²/2)/√(2π).   (dx may alias dy)
void ck_gelu_backward(const float *x, const float *dy, float *dx, size_t n);

/// QuickGELU (OpenAI CLIP's activation): y = x · σ(1.702 · x).   (y may alias x)
void ck_quick_gelu_forward(const float *x, float *y, size_t n);

/// QuickGELU backward: dx = dy · (σ + 1.702 · x · σ · (1 − σ)),  σ = σ(1.702 · x).   (dx may alias dy)
void ck_quick_gelu_backward(const float *x, const float *dy, float *dx, size_t n);

/// Row softmax in place, with a scale applied first: row ← softmax(scale · row), max-subtracted.
/// Row r starts at s + r·ld (ld ≥ cols).
void ck_softmax_rows(float *s, size_t rows, size_t cols, size_t ld, float scale);

/// Softmax backward in place over rows (p is the softmax output, dp its upstream gradient):
/// dp ← scale · p ⊙ (dp − Σ_j dp_j p_j). Gives the gradient w.r.t. the *unscaled* logits when the forward
/// was softmax(scale · logits).
void ck_softmax_backward_rows(const float *p, float *dp, size_t rows, size_t cols, size_t ld, float scale);

/// LayerNorm forward over rows of `cols`: xhat = (x − mean)·rstd, rstd = 1/√(var + eps) (biased variance),
/// y = xhat · gamma + beta. Writes mean[r] and rstd[r] for the backward. (y must not alias x)
void ck_layernorm_forward(const float *x, float *y, float *mean, float *rstd,
                          const float *gamma, const float *beta, size_t rows, size_t cols, float eps);

/// LayerNorm backward: dx = rstd · (g − mean(g) − xhat · mean(g ⊙ xhat)), g = dy ⊙ gamma, written (not added)
/// to dx. If dgamma/dbeta are non-NULL, ACCUMULATES dgamma += Σ_rows dy ⊙ xhat, dbeta += Σ_rows dy.
/// (dx may alias dy)
void ck_layernorm_backward(const float *x, const float *dy, float *dx, const float *mean, const float *rstd,
                           const float *gamma, float *dgamma, float *dbeta, size_t rows, size_t cols);

/// Thin GEMM with a small output width r (LoRA's x·Aᵀ and dy·B): out[i·ldo + j] = alpha · Σ_q x[i·ldx + q] · w[j·ldw + q]
/// for i < rows, j < r, q < k (out = alpha · x · wᵀ, out written). Reads each row of x once.
void ck_thin_rows(const float *x, size_t ldx, const float *w, size_t ldw, float *out, size_t ldo, size_t rows,
                  size_t k, size_t r, float alpha);

/// Thin GEMM reducing over rows into a small r × cols result (LoRA's dyᵀ·h and gᵀ·x):
/// acc[j·lda + q] += Σ_i s[i·lds + j] · x[i·ldx + q]   for j < r, q < cols, i < rows (acc += sᵀ · x, ACCUMULATED).
/// Reads x row after row. Callers split rows across threads with one acc each.
void ck_thin_outer(float *acc, size_t lda, const float *s, size_t lds, const float *x, size_t ldx, size_t rows,
                   size_t r, size_t cols);

#ifdef __cplusplus
}
#endif
#endif
