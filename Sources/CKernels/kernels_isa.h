// Kernel bodies, written once over a small vector vocabulary and instantiated per instruction set by kernels.c
// (which #includes this file once per ISA, inside that ISA's target region). Not a public header.
//
// The includer defines, for a vector of VW floats (VF) and a lane mask (VM):
//   CK_FN(name)                 name of this ISA's instance of a kernel (name + ISA suffix)
//   V_ZERO, V_SET1(f)           all-zero / broadcast vectors
//   V_LOAD(p), V_STORE(p, v)    unaligned full-width load / store
//   V_TAIL(k)                   mask of the first k lanes (0 < k < VW)
//   V_LOADM(p, m), V_STOREM(p, m, v)   masked load (dead lanes read as 0, never touch memory) / masked store
//   V_SEL(m, a, b)              lane-wise m ? a : b
//   V_ADD, V_SUB, V_MUL, V_DIV, V_MAX, V_FMA(a, b, c) = a·b + c
//   V_HSUM(v), V_HMAX(v)        horizontal sum / max → float
//   V_EXP(v), V_ERF(v)          exp and erf (SLEEF, 1.0 ULP; libm in the scalar build)
// Every loop runs full vectors, then at most one masked tail vector; this file #undefs the vocabulary at its end.

#define CK_SQRT1_2 0.70710678118654752440f   // 1/√2
#define CK_INV_SQRT_2PI 0.39894228040143267794f   // 1/√(2π)

/// y = 0.5·x·(1 + erf(x/√2)), evaluated as h + h·erf(x/√2) with h = 0.5·x.
static inline VF CK_FN(gelu_v)(VF x) {
    VF h = V_MUL(V_SET1(0.5f), x);
    return V_FMA(h, V_ERF(V_MUL(x, V_SET1(CK_SQRT1_2))), h);
}

/// dx = dy·(Φ(x) + x·φ(x)),  Φ(x) = 0.5 + 0.5·erf(x/√2),  φ(x) = exp(−x²/2)/√(2π).
static inline VF CK_FN(gelu_grad_v)(VF x, VF dy) {
    VF cdf = V_FMA(V_SET1(0.5f), V_ERF(V_MUL(x, V_SET1(CK_SQRT1_2))), V_SET1(0.5f));
    VF pdf = V_MUL(V_EXP(V_MUL(V_MUL(x, x), V_SET1(-0.5f))), V_SET1(CK_INV_SQRT_2PI));
    return V_MUL(dy, V_FMA(x, pdf, cdf));
}

/// y[i] = 0.5·x[i]·(1 + erf(x[i]/√2)).
static void CK_FN(gelu_forward)(const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + VW <= n; i += VW) V_STORE(y + i, CK_FN(gelu_v)(V_LOAD(x + i)));
    if (i < n) {
        VM m = V_TAIL(n - i);
        V_STOREM(y + i, m, CK_FN(gelu_v)(V_LOADM(x + i, m)));
    }
}

/// dx[i] = dy[i]·(Φ(x[i]) + x[i]·φ(x[i])).
static void CK_FN(gelu_backward)(const float *x, const float *dy, float *dx, size_t n) {
    size_t i = 0;
    for (; i + VW <= n; i += VW) V_STORE(dx + i, CK_FN(gelu_grad_v)(V_LOAD(x + i), V_LOAD(dy + i)));
    if (i < n) {
        VM m = V_TAIL(n - i);
        V_STOREM(dx + i, m, CK_FN(gelu_grad_v)(V_LOADM(x + i, m), V_LOADM(dy + i, m)));
    }
}

#define CK_QUICK_GELU_K 1.702f

/// QuickGELU (OpenAI CLIP): y = x·σ(1.702·x) = x / (1 + exp(−1.702·x)).
static inline VF CK_FN(quick_gelu_v)(VF x) {
    return V_DIV(x, V_ADD(V_SET1(1.0f), V_EXP(V_MUL(x, V_SET1(-CK_QUICK_GELU_K)))));
}

/// dx = dy·(σ + 1.702·x·σ·(1 − σ)),  σ = σ(1.702·x).
static inline VF CK_FN(quick_gelu_grad_v)(VF x, VF dy) {
    VF one = V_SET1(1.0f);
    VF sig = V_DIV(one, V_ADD(one, V_EXP(V_MUL(x, V_SET1(-CK_QUICK_GELU_K)))));
    VF kx = V_MUL(x, V_SET1(CK_QUICK_GELU_K));
    return V_MUL(dy, V_FMA(V_MUL(kx, sig), V_SUB(one, sig), sig));
}

static void CK_FN(quick_gelu_forward)(const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + VW <= n; i += VW) V_STORE(y + i, CK_FN(quick_gelu_v)(V_LOAD(x + i)));
    if (i < n) {
        VM m = V_TAIL(n - i);
        V_STOREM(y + i, m, CK_FN(quick_gelu_v)(V_LOADM(x + i, m)));
    }
}

static void CK_FN(quick_gelu_backward)(const float *x, const float *dy, float *dx, size_t n) {
    size_t i = 0;
    for (; i + VW <= n; i += VW) V_STORE(dx + i, CK_FN(quick_gelu_grad_v)(V_LOAD(x + i), V_LOAD(dy + i)));
    if (i < n) {
        VM m = V_TAIL(n - i);
        V_STOREM(dx + i, m, CK_FN(quick_gelu_grad_v)(V_LOADM(x + i, m), V_LOADM(dy + i, m)));
    }
}

/// Per row: t = scale·s;  s ← exp(t − max t) / Σ exp(t − max t).
/// The shifted logit is computed as fma(s, scale, −max) so rounding of max cancels in the normalisation.
static void CK_FN(softmax_rows)(float *s, size_t rows, size_t cols, size_t ld, float scale) {
    const VF vscale = V_SET1(scale);
    for (size_t r = 0; r < rows; r++) {
        float *row = s + r * ld;
        size_t i;

        VF vmax = V_SET1(-INFINITY);
        for (i = 0; i + VW <= cols; i += VW) vmax = V_MAX(vmax, V_MUL(V_LOAD(row + i), vscale));
        if (i < cols) {
            VM m = V_TAIL(cols - i);
            vmax = V_SEL(m, V_MAX(vmax, V_MUL(V_LOADM(row + i, m), vscale)), vmax);
        }
        const VF vneg_max = V_SET1(-V_HMAX(vmax));

        VF vsum = V_ZERO;
        for (i = 0; i + VW <= cols; i += VW) {
            VF e = V_EXP(V_FMA(V_LOAD(row + i), vscale, vneg_max));
            V_STORE(row + i, e);
            vsum = V_ADD(vsum, e);
        }
        if (i < cols) {
            VM m = V_TAIL(cols - i);
            VF e = V_EXP(V_FMA(V_LOADM(row + i, m), vscale, vneg_max));
            V_STOREM(row + i, m, e);
            vsum = V_ADD(vsum, V_SEL(m, e, V_ZERO));
        }

        const VF vinv = V_SET1(1.0f / V_HSUM(vsum));
        for (i = 0; i + VW <= cols; i += VW) V_STORE(row + i, V_MUL(V_LOAD(row + i), vinv));
        if (i < cols) {
            VM m = V_TAIL(cols - i);
            V_STOREM(row + i, m, V_MUL(V_LOADM(row + i, m), vinv));
        }
    }
}

/// Per row: dp ← scale · p ⊙ (dp − Σ_j dp_j·p_j).
static void CK_FN(softmax_backward_rows)(const float *p, float *dp, size_t rows, size_t cols, size_t ld,
                                         float scale) {
    const VF vscale = V_SET1(scale);
    for (size_t r = 0; r < rows; r++) {
        const float *pr = p + r * ld;
        float *dr = dp + r * ld;
        size_t i;

        VF vdot = V_ZERO;   // masked loads zero dead lanes, so the tail adds 0 there
        for (i = 0; i + VW <= cols; i += VW) vdot = V_FMA(V_LOAD(dr + i), V_LOAD(pr + i), vdot);
        if (i < cols) {
            VM m = V_TAIL(cols - i);
            vdot = V_FMA(V_LOADM(dr + i, m), V_LOADM(pr + i, m), vdot);
        }
        const VF vdot_all = V_SET1(V_HSUM(vdot));

        for (i = 0; i + VW <= cols; i += VW)
            V_STORE(dr + i, V_MUL(V_MUL(V_LOAD(pr + i), vscale), V_SUB(V_LOAD(dr + i), vdot_all)));
        if (i < cols) {
            VM m = V_TAIL(cols - i);
            V_STOREM(dr + i, m, V_MUL(V_MUL(V_LOADM(pr + i, m), vscale), V_SUB(V_LOADM(dr + i, m), vdot_all)));
        }
    }
}

/// Per row of n = cols: mean = Σx/n, var = Σ(x − mean)²/n, rstd = 1/√(var + eps), y = (x − mean)·rstd·gamma + beta.
/// Corrected two-pass: a provisional mean m0 = Σx/n, then with d = x − m0: mean = m0 + Σd/n,
/// var = Σd²/n − (Σd/n)² (the correction term is tiny and removes the rounding error of m0).
static void CK_FN(layernorm_forward)(const float *x, float *y, float *mean, float *rstd,
                                     const float *gamma, const float *beta, size_t rows, size_t cols, float eps) {
    if (cols == 0) return;
    const double n = (double)cols;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        size_t i;

        VF vs = V_ZERO;   // dead tail lanes load as 0
        for (i = 0; i + VW <= cols; i += VW) vs = V_ADD(vs, V_LOAD(xr + i));
        if (i < cols) vs = V_ADD(vs, V_LOADM(xr + i, V_TAIL(cols - i)));
        const float m0 = (float)(V_HSUM(vs) / n);

        const VF vm0 = V_SET1(m0);
        VF vd = V_ZERO, vd2 = V_ZERO;
        for (i = 0; i + VW <= cols; i += VW) {
            VF d = V_SUB(V_LOAD(xr + i), vm0);
            vd = V_ADD(vd, d);
            vd2 = V_FMA(d, d, vd2);
        }
        if (i < cols) {
            VM m = V_TAIL(cols - i);
            VF d = V_SEL(m, V_SUB(V_LOADM(xr + i, m), vm0), V_ZERO);
            vd = V_ADD(vd, d);
            vd2 = V_FMA(d, d, vd2);
        }
        const double dmean = V_HSUM(vd) / n;
        double var = V_HSUM(vd2) / n - dmean * dmean;
        if (var < 0) var = 0;
        const float mu = (float)(m0 + dmean);
        const float rs = (float)(1.0 / sqrt(var + (double)eps));
        mean[r] = mu;
        rstd[r] = rs;

        const VF vmu = V_SET1(mu), vrs = V_SET1(rs);
        for (i = 0; i + VW <= cols; i += VW) {
            VF xhat = V_MUL(V_SUB(V_LOAD(xr + i), vmu), vrs);
            V_STORE(yr + i, V_FMA(xhat, V_LOAD(gamma + i), V_LOAD(beta + i)));
        }
        if (i < cols) {
            VM m = V_TAIL(cols - i);
            VF xhat = V_MUL(V_SUB(V_LOADM(xr + i, m), vmu), vrs);
            V_STOREM(yr + i, m, V_FMA(xhat, V_LOADM(gamma + i, m), V_LOADM(beta + i, m)));
        }
    }
}

/// Per row, with xhat = (x − mean)·rstd and g = dy ⊙ gamma:
/// dx = rstd·(g − mean(g) − xhat·mean(g ⊙ xhat)); dgamma += dy ⊙ xhat and dbeta += dy when non-NULL.
static void CK_FN(layernorm_backward)(const float *x, const float *dy, float *dx, const float *mean,
                                      const float *rstd, const float *gamma, float *dgamma, float *dbeta,
                                      size_t rows, size_t cols) {
    if (cols == 0) return;
    const float inv_n = (float)(1.0 / (double)cols);
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        const float *dyr = dy + r * cols;
        float *dxr = dx + r * cols;
        const VF vmu = V_SET1(mean[r]), vrs = V_SET1(rstd[r]);
        size_t i;

        VF vg = V_ZERO, vgx = V_ZERO;   // dead tail lanes have dy = 0, hence g = 0
        for (i = 0; i + VW <= cols; i += VW) {
            VF xhat = V_MUL(V_SUB(V_LOAD(xr + i), vmu), vrs);
            VF g = V_MUL(V_LOAD(dyr + i), V_LOAD(gamma + i));
            vg = V_ADD(vg, g);
            vgx = V_FMA(g, xhat, vgx);
        }
        if (i < cols) {
            VM m = V_TAIL(cols - i);
            VF xhat = V_MUL(V_SUB(V_LOADM(xr + i, m), vmu), vrs);
            VF g = V_MUL(V_LOADM(dyr + i, m), V_LOADM(gamma + i, m));
            vg = V_ADD(vg, g);
            vgx = V_FMA(g, xhat, vgx);
        }
        const VF va = V_SET1(V_HSUM(vg) * inv_n);
        const VF vnb = V_SET1(-V_HSUM(vgx) * inv_n);

        // dy is read before dx is written at the same index, so dx may alias dy.
        for (i = 0; i + VW <= cols; i += VW) {
            VF xhat = V_MUL(V_SUB(V_LOAD(xr + i), vmu), vrs);
            VF d = V_LOAD(dyr + i);
            if (dgamma) V_STORE(dgamma + i, V_FMA(d, xhat, V_LOAD(dgamma + i)));
            if (dbeta) V_STORE(dbeta + i, V_ADD(V_LOAD(dbeta + i), d));
            VF g = V_MUL(d, V_LOAD(gamma + i));
            V_STORE(dxr + i, V_MUL(vrs, V_FMA(xhat, vnb, V_SUB(g, va))));
        }
        if (i < cols) {
            VM m = V_TAIL(cols - i);
            VF xhat = V_MUL(V_SUB(V_LOADM(xr + i, m), vmu), vrs);
            VF d = V_LOADM(dyr + i, m);
            if (dgamma) V_STOREM(dgamma + i, m, V_FMA(d, xhat, V_LOADM(dgamma + i, m)));
            if (dbeta) V_STOREM(dbeta + i, m, V_ADD(V_LOADM(dbeta + i, m), d));
            VF g = V_MUL(d, V_LOADM(gamma + i, m));
            V_STOREM(dxr + i, m, V_MUL(vrs, V_FMA(xhat, vnb, V_SUB(g, va))));
        }
    }
}

// ---- Thin GEMMs of LoRA: one side is the rank r (≤ 8 per register block), the other thousands of rows. ----
// OpenBLAS packs the large operand for these shapes and reaches a fraction of its peak; these read it once.

#define CK_TR_RB (VW >= 16 ? 2 : 1)   // rows per register block of thin_rows: RB·8 accumulators (+ RB + 1)
#define CK_TO_CW (VW >= 16 ? 2 : 1)   // vectors per column chunk of thin_outer: 8·CW accumulators (+ CW + 1)

/// out[(i+ρ)·ldo + j] = alpha · Σ_q x[(i+ρ)·ldx + q] · w[j·ldw + q]   for ρ < rb, j < nj (rb, nj constants).
static inline __attribute__((always_inline)) void CK_FN(thin_rows_block)(
        const float *x, size_t ldx, const float *w, size_t ldw, float *out, size_t ldo, size_t k, float alpha,
        const int rb, const int nj) {
    VF acc[CK_TR_RB][8];
    for (int p = 0; p < rb; p++)
        for (int j = 0; j < nj; j++) acc[p][j] = V_ZERO;
    size_t q = 0;
    for (; q + VW <= k; q += VW) {
        VF xv[CK_TR_RB];
        for (int p = 0; p < rb; p++) xv[p] = V_LOAD(x + p * ldx + q);
        for (int j = 0; j < nj; j++) {
            VF wv = V_LOAD(w + j * ldw + q);
            for (int p = 0; p < rb; p++) acc[p][j] = V_FMA(xv[p], wv, acc[p][j]);
        }
    }
    if (q < k) {   // dead lanes load as 0 on both sides
        VM m = V_TAIL(k - q);
        VF xv[CK_TR_RB];
        for (int p = 0; p < rb; p++) xv[p] = V_LOADM(x + p * ldx + q, m);
        for (int j = 0; j < nj; j++) {
            VF wv = V_LOADM(w + j * ldw + q, m);
            for (int p = 0; p < rb; p++) acc[p][j] = V_FMA(xv[p], wv, acc[p][j]);
        }
    }
    for (int p = 0; p < rb; p++)
        for (int j = 0; j < nj; j++) out[p * ldo + j] = alpha * V_HSUM(acc[p][j]);
}

#define CK_TR_CASES(rb)                                                                                          \
    switch (nj) {                                                                                              \
    case 8: CK_FN(thin_rows_block)(xi, ldx, wj, ldw, oij, ldo, k, alpha, rb, 8); break;                         \
    case 7: CK_FN(thin_rows_block)(xi, ldx, wj, ldw, oij, ldo, k, alpha, rb, 7); break;                         \
    case 6: CK_FN(thin_rows_block)(xi, ldx, wj, ldw, oij, ldo, k, alpha, rb, 6); break;                         \
    case 5: CK_FN(thin_rows_block)(xi, ldx, wj, ldw, oij, ldo, k, alpha, rb, 5); break;                         \
    case 4: CK_FN(thin_rows_block)(xi, ldx, wj, ldw, oij, ldo, k, alpha, rb, 4); break;                         \
    case 3: CK_FN(thin_rows_block)(xi, ldx, wj, ldw, oij, ldo, k, alpha, rb, 3); break;                         \
    case 2: CK_FN(thin_rows_block)(xi, ldx, wj, ldw, oij, ldo, k, alpha, rb, 2); break;                         \
    default: CK_FN(thin_rows_block)(xi, ldx, wj, ldw, oij, ldo, k, alpha, rb, 1); break;                        \
    }

/// out[i·ldo + j] = alpha · Σ_q x[i·ldx + q] · w[j·ldw + q]   (out = alpha · x · wᵀ, w [r, k]), rows outermost so
/// each row of x is read from memory once whatever r is.
static void CK_FN(thin_rows)(const float *x, size_t ldx, const float *w, size_t ldw, float *out, size_t ldo,
                             size_t rows, size_t k, size_t r, float alpha) {
    size_t i = 0;
    for (; i + CK_TR_RB <= rows; i += CK_TR_RB) {
        const float *xi = x + i * ldx;
        for (size_t j0 = 0; j0 < r; j0 += 8) {
            const size_t nj = r - j0 < 8 ? r - j0 : 8;
            const float *wj = w + j0 * ldw;
            float *oij = out + i * ldo + j0;
            CK_TR_CASES(CK_TR_RB)
        }
    }
    for (; i < rows; i++) {
        const float *xi = x + i * ldx;
        for (size_t j0 = 0; j0 < r; j0 += 8) {
            const size_t nj = r - j0 < 8 ? r - j0 : 8;
            const float *wj = w + j0 * ldw;
            float *oij = out + i * ldo + j0;
            CK_TR_CASES(1)
        }
    }
}
#undef CK_TR_CASES

/// acc[j·lda + q] += Σ_{i < rows} s[i·lds + j] · x[i·ldx + q]   for j < nj (constant), q0 ≤ q < q0 + cw·VW
/// (cw constant; with `m` the last vector's lanes past the end are masked off).
static inline __attribute__((always_inline)) void CK_FN(thin_outer_chunk)(
        float *acc, size_t lda, const float *s, size_t lds, const float *x, size_t ldx, size_t rows, size_t q0,
        const int nj, const int cw, int masked, VM m) {
    VF a[8][CK_TO_CW];
    for (int j = 0; j < nj; j++)
        for (int c = 0; c < cw; c++)
            a[j][c] = masked ? V_LOADM(acc + j * lda + q0 + c * VW, m) : V_LOAD(acc + j * lda + q0 + c * VW);
    for (size_t i = 0; i < rows; i++) {
        const float *xr = x + i * ldx + q0, *sr = s + i * lds;
        VF xv[CK_TO_CW];
        for (int c = 0; c < cw; c++) xv[c] = masked ? V_LOADM(xr + c * VW, m) : V_LOAD(xr + c * VW);
        for (int j = 0; j < nj; j++) {
            VF sv = V_SET1(sr[j]);
            for (int c = 0; c < cw; c++) a[j][c] = V_FMA(sv, xv[c], a[j][c]);
        }
    }
    for (int j = 0; j < nj; j++)
        for (int c = 0; c < cw; c++) {
            if (masked) V_STOREM(acc + j * lda + q0 + c * VW, m, a[j][c]);
            else V_STORE(acc + j * lda + q0 + c * VW, a[j][c]);
        }
}

/// The row block [rows ≤ CK_TO_RB] × all of cols for one register block of nj (constant) outputs.
static inline __attribute__((always_inline)) void CK_FN(thin_outer_rows)(
        float *acc, size_t lda, const float *s, size_t lds, const float *x, size_t ldx, size_t rows, size_t cols,
        const int nj) {
    size_t q = 0;
    for (; q + CK_TO_CW * VW <= cols; q += CK_TO_CW * VW)
        CK_FN(thin_outer_chunk)(acc, lda, s, lds, x, ldx, rows, q, nj, CK_TO_CW, 0, V_TAIL(1));
    for (; q + VW <= cols; q += VW) CK_FN(thin_outer_chunk)(acc, lda, s, lds, x, ldx, rows, q, nj, 1, 0, V_TAIL(1));
    if (q < cols) CK_FN(thin_outer_chunk)(acc, lda, s, lds, x, ldx, rows, q, nj, 1, 1, V_TAIL(cols - q));
}

#define CK_TO_RB 8   // rows per block: x is read row after row (8 streams); acc [r, cols] stays in L1/L2

/// acc[j·lda + q] += Σ_i s[i·lds + j] · x[i·ldx + q]   (acc += sᵀ x, acc [r, cols]).
static void CK_FN(thin_outer)(float *acc, size_t lda, const float *s, size_t lds, const float *x, size_t ldx,
                              size_t rows, size_t r, size_t cols) {
    for (size_t i0 = 0; i0 < rows; i0 += CK_TO_RB) {
        const size_t rb = rows - i0 < CK_TO_RB ? rows - i0 : CK_TO_RB;
        const float *si = s + i0 * lds, *xi = x + i0 * ldx;
        for (size_t j0 = 0; j0 < r; j0 += 8) {
            const size_t nj = r - j0 < 8 ? r - j0 : 8;
            float *aj = acc + j0 * lda;
            const float *sj = si + j0;
            switch (nj) {
            case 8: CK_FN(thin_outer_rows)(aj, lda, sj, lds, xi, ldx, rb, cols, 8); break;
            case 7: CK_FN(thin_outer_rows)(aj, lda, sj, lds, xi, ldx, rb, cols, 7); break;
            case 6: CK_FN(thin_outer_rows)(aj, lda, sj, lds, xi, ldx, rb, cols, 6); break;
            case 5: CK_FN(thin_outer_rows)(aj, lda, sj, lds, xi, ldx, rb, cols, 5); break;
            case 4: CK_FN(thin_outer_rows)(aj, lda, sj, lds, xi, ldx, rb, cols, 4); break;
            case 3: CK_FN(thin_outer_rows)(aj, lda, sj, lds, xi, ldx, rb, cols, 3); break;
            case 2: CK_FN(thin_outer_rows)(aj, lda, sj, lds, xi, ldx, rb, cols, 2); break;
            default: CK_FN(thin_outer_rows)(aj, lda, sj, lds, xi, ldx, rb, cols, 1); break;
            }
        }
    }
}
#undef CK_TO_RB
#undef CK_TR_RB
#undef CK_TO_CW

#undef CK_SQRT1_2
#undef CK_INV_SQRT_2PI
#undef CK_QUICK_GELU_K
#undef CK_FN
#undef VF
#undef VM
#undef VW
#undef V_ZERO
#undef V_SET1
#undef V_LOAD
#undef V_STORE
#undef V_TAIL
#undef V_LOADM
#undef V_STOREM
#undef V_SEL
#undef V_ADD
#undef V_SUB
#undef V_MUL
#undef V_DIV
#undef V_MAX
#undef V_FMA
#undef V_HSUM
#undef V_HMAX
#undef V_EXP
#undef V_ERF
