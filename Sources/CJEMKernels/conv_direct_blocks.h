// conv_direct_blocks.h: the register blocks of the direct strided convolution (conv_direct.c), written
// once for any vector width and included once per instruction set. The includer defines:
//   VL        floats per vector (16 for AVX-512, 8 for AVX2)
//   NVB, PIXB blocks of NVB ≤ 4 vectors × PIXB ≤ 6 pixels of accumulators
//   TGT       the function attribute of the instruction set (empty for the baseline AVX2 build)
//   SUF(f)    the instruction set's name for function f
//   VF, VZERO(), VLOAD(p), VLOADN(p, n) (the first n < VL lanes, zero past them; any n ≥ VL loads
//   all), VSTORE(p, v), VSET1(x), VFMA(a, b, c) (a·b + c, one rounding)
//   and a function SUF(store_col)(VF acc, const float* bias, int oc, int n, int act, float slope,
//   float* y, size_t P): writes acc + bias for the n ≤ VL channels oc … of one pixel, channel
//   oc + l at y + l·P, after the activation.
// It undefines those macros at its end, so the next includer defines them afresh.
// Every output (and every dcolᵀ entry) is one FMA chain from +0 over its taps (output channels) in
// order, whatever VL and NVB are: both builds give the same bits.

// DIRECT_DISPATCH(BLOCK, nv, r) calls the macro BLOCK(NV, R) with NV = nv (1 … NVB) and R = r
// (1 … 6) as compile-time constants, so that each block's accumulators are registers.
#define DIRECT_R_CASES(BLOCK, NV, r) \
    switch (r) { \
        case 6: BLOCK(NV, 6); break; case 5: BLOCK(NV, 5); break; case 4: BLOCK(NV, 4); break; \
        case 3: BLOCK(NV, 3); break; case 2: BLOCK(NV, 2); break; default: BLOCK(NV, 1); break; \
    }
#if NVB >= 3
#define DIRECT_DISPATCH(BLOCK, nv, r) \
    switch (nv) { \
        case 4: DIRECT_R_CASES(BLOCK, 4, r) break; case 3: DIRECT_R_CASES(BLOCK, 3, r) break; \
        case 2: DIRECT_R_CASES(BLOCK, 2, r) break; default: DIRECT_R_CASES(BLOCK, 1, r) break; \
    }
#else
#define DIRECT_DISPATCH(BLOCK, nv, r) \
    switch (nv) { case 2: DIRECT_R_CASES(BLOCK, 2, r) break; default: DIRECT_R_CASES(BLOCK, 1, r) break; }
#endif

// One block: NV vectors of output channels [oc, oc + VL·NV) × R pixels starting at pixel p0, taps
// [k0, k1). The partial sums of earlier taps wait in T (p × DIRECT_GROUP floats, the block's columns
// from tcol); the last chunk of taps adds the bias, applies the activation and writes y[oc][p].
static inline TGT __attribute__((always_inline))
void SUF(direct_block)(const float* Wp, size_t OCP, const int* toff, int k0, int k1, const float* xp, const int* poff,
                       float* T, int first, int last, float* y, int P, int OC, int oc, int tcol, int p0,
                       const float* bias, int act, float slope, const int NV, const int R) {
    VF acc[6][4];   // R ≤ 6, NV ≤ 4 (constants once inlined: only R × NV of them live)
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = first ? VZERO() : VLOAD(T + (size_t)(p0 + r) * DIRECT_GROUP + tcol + VL * v);
    const float* xs[6];
    for (int r = 0; r < R; r++) xs[r] = xp + poff[p0 + r];
    const float* w = Wp + (size_t)k0 * OCP + oc;
    for (int k = k0; k < k1; k++, w += OCP) {
        VF wv[4];
        for (int v = 0; v < NV; v++) wv[v] = VLOAD(w + VL * v);
        const int t = toff[k];
        for (int r = 0; r < R; r++) {
            const VF b = VSET1(xs[r][t]);
            for (int v = 0; v < NV; v++) acc[r][v] = VFMA(b, wv[v], acc[r][v]);
        }
    }
    if (!last) {
        for (int r = 0; r < R; r++)
            for (int v = 0; v < NV; v++) VSTORE(T + (size_t)(p0 + r) * DIRECT_GROUP + tcol + VL * v, acc[r][v]);
        return;
    }
    for (int v = 0; v < NV; v++) {
        const int c = oc + VL * v, n = OC - c < VL ? OC - c : VL;
        float* yv = y + (size_t)c * P + p0;
        for (int r = 0; r < R; r++) SUF(store_col)(acc[r][v], bias, c, n, act, slope, yv + r, (size_t)P);
    }
}

// All pixels of the output channels [oc0, oc0 + DIRECT_GROUP) of one image (fewer at the end), taps in
// chunks of DIRECT_KC so that a chunk's weights and input rows stay in L1 while every block uses them.
static TGT void SUF(direct_channels)(const float* Wp, size_t OCP, const int* toff, int K, const float* xp, const int* poff,
                                     float* T, float* y, int P, int OC, int oc0, const float* bias, int act, float slope) {
    const int left = (OC - oc0 + VL - 1) / VL, nv = left < DIRECT_GROUP / VL ? left : DIRECT_GROUP / VL;
    for (int k0 = 0; k0 < K; k0 += DIRECT_KC) {
        const int k1 = K - k0 < DIRECT_KC ? K : k0 + DIRECT_KC, first = k0 == 0, last = k1 == K;
        for (int vb = 0; vb < nv; vb += NVB) {
            const int bv = nv - vb < NVB ? nv - vb : NVB, tcol = VL * vb, oc = oc0 + tcol;
            for (int p = 0; p < P; p += PIXB) {
#define FWD_BLOCK(NV, R) SUF(direct_block)(Wp, OCP, toff, k0, k1, xp, poff, T, first, last, y, P, OC, oc, tcol, p, bias, act, slope, NV, R)
                DIRECT_DISPATCH(FWD_BLOCK, bv, P - p < PIXB ? P - p : PIXB)
#undef FWD_BLOCK
            }
        }
    }
}

// dcolᵀ columns [m, m + VL·NV) × R pixels from p0, the sum over output channels [o0, o1) continued
// from what dcolᵀ holds (o0 > 0) or started from +0.
static inline TGT __attribute__((always_inline))
void SUF(dcol_block)(const float* Wr, int M, int o0, int o1, const float* dy, int P, float* dcolT, size_t ldt,
                     int m, int p0, const int NV, const int R) {
    VF acc[6][4];   // R ≤ 6, NV ≤ 4 (constants once inlined: only R × NV of them live)
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = o0 == 0 ? VZERO() : VLOAD(dcolT + (size_t)(p0 + r) * ldt + m + VL * v);
    for (int o = o0; o < o1; o++) {
        const float* w = Wr + (size_t)o * M + m;
        VF wv[4];
        for (int v = 0; v < NV; v++) wv[v] = VLOADN(w + VL * v, M - m - VL * v);
        const float* d = dy + (size_t)o * P + p0;
        for (int r = 0; r < R; r++) {
            const VF b = VSET1(d[r]);
            for (int v = 0; v < NV; v++) acc[r][v] = VFMA(b, wv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) VSTORE(dcolT + (size_t)(p0 + r) * ldt + m + VL * v, acc[r][v]);
}

// Columns [m0, m0 + DIRECT_GROUP) (fewer at the end) of dcolᵀ for all pixels of one image, the sum over
// output channels in chunks of DIRECT_OCC (partial sums wait in dcolᵀ itself: the same FMA chain).
static TGT void SUF(dcol_rows)(const float* Wr, int M, int OC, const float* dy, int P, float* dcolT, size_t ldt, int m0) {
    const int left = (M - m0 + VL - 1) / VL, nv = left < DIRECT_GROUP / VL ? left : DIRECT_GROUP / VL;
    for (int o0 = 0; o0 < OC; o0 += DIRECT_OCC) {
        const int o1 = OC - o0 < DIRECT_OCC ? OC : o0 + DIRECT_OCC;
        for (int vb = 0; vb < nv; vb += NVB) {
            const int bv = nv - vb < NVB ? nv - vb : NVB, m = m0 + VL * vb;
            for (int p = 0; p < P; p += PIXB) {
#define DCOL_BLOCK(NV, R) SUF(dcol_block)(Wr, M, o0, o1, dy, P, dcolT, ldt, m, p, NV, R)
                DIRECT_DISPATCH(DCOL_BLOCK, bv, P - p < PIXB ? P - p : PIXB)
#undef DCOL_BLOCK
            }
        }
    }
}

// Weight gradient, one image: Dw[k][oc] += Σ_p dyᵀ[p][oc] · xp[poff[p] + toff[k]], for NV vectors of
// output channels [oc, oc + VL·NV) × R taps from k: dy values as vectors, input values broadcast,
// the sum over the image's pixels in registers.
static inline TGT __attribute__((always_inline))
void SUF(wgrad_block)(const float* dyT, size_t OCP, int P, const float* xp, const int* poff, const int* toff,
                      float* Dw, int oc, int k, const int NV, const int R) {
    VF acc[6][4];   // R ≤ 6, NV ≤ 4
    int t[6];
    for (int r = 0; r < R; r++) t[r] = toff[k + r];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = VLOAD(Dw + (size_t)(k + r) * OCP + oc + VL * v);
    for (int p = 0; p < P; p++) {
        VF d[4];
        for (int v = 0; v < NV; v++) d[v] = VLOAD(dyT + (size_t)p * OCP + oc + VL * v);
        const float* x = xp + poff[p];
        for (int r = 0; r < R; r++) {
            const VF b = VSET1(x[t[r]]);
            for (int v = 0; v < NV; v++) acc[r][v] = VFMA(b, d[v], acc[r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) VSTORE(Dw + (size_t)(k + r) * OCP + oc + VL * v, acc[r][v]);
}

// All of one image's weight gradient into Dw (K × OCP): per block of output channels (its slice of
// dyᵀ stays in L1) every block of taps, each over all pixels.
static TGT void SUF(wgrad_image)(const float* dyT, size_t OCP, int P, const float* xp, const int* poff, const int* toff,
                                 int K, float* Dw) {
    const int nvt = (int)(OCP / VL);
    for (int vb = 0; vb < nvt; vb += NVB) {
        const int bv = nvt - vb < NVB ? nvt - vb : NVB, oc = VL * vb;
        for (int k = 0; k < K; k += PIXB) {
#define WGRAD_BLOCK(NV, R) SUF(wgrad_block)(dyT, OCP, P, xp, poff, toff, Dw, oc, k, NV, R)
            DIRECT_DISPATCH(WGRAD_BLOCK, bv, K - k < PIXB ? K - k : PIXB)
#undef WGRAD_BLOCK
        }
    }
}

#undef DIRECT_R_CASES
#undef DIRECT_DISPATCH
#undef VL
#undef NVB
#undef PIXB
#undef TGT
#undef SUF
#undef VF
#undef VZERO
#undef VLOAD
#undef VLOADN
#undef VSTORE
#undef VSET1
#undef VFMA
