/* C-level self-test of lstm_bench/impls/vectorised/fused.c, built and run by tests/test_fused_c.py
   (once with the library's own flags, once under -fsanitize=address,undefined).

   Every entry point of fused.c (fwd_cell, bwd_cell, fwd_loop, bwd_loop; float and double) runs on
   small sizes and on one size large enough for the OpenMP branch (B * H >= PARALLEL_MIN), and is
   compared with the same equations written plainly in double here, on a plain column-major GEMM
   with the reference BLAS's argument convention (netlib sgemm.f: C = alpha op(A) op(B) + beta C).
   Every buffer is allocated to its exact size, so that the address sanitizer sees any access past
   an end. Prints "fused self-test ok" and exits 0, or names the first mismatch and exits 1. */
#include <stdio.h>
#include <stdlib.h>

#include "fused.c"

/* netlib-convention GEMM (column-major; op = "N" or "T"), in the element type of each variant. */
#define REF_GEMM(NAME, T)                                                                      \
static void NAME(const char *ta, const char *tb, const int *m, const int *n, const int *k,     \
                 const T *alpha, const T *A, const int *lda, const T *B, const int *ldb,       \
                 const T *beta, T *C, const int *ldc) {                                        \
    for (int j = 0; j < *n; ++j)                                                               \
        for (int i = 0; i < *m; ++i) {                                                         \
            double s = 0;                                                                      \
            for (int p = 0; p < *k; ++p) {                                                     \
                double a = *ta == 'N' ? A[i + (size_t)p * *lda] : A[p + (size_t)i * *lda];     \
                double b = *tb == 'N' ? B[p + (size_t)j * *ldb] : B[j + (size_t)p * *ldb];     \
                s += a * b;                                                                    \
            }                                                                                  \
            T *c = &C[i + (size_t)j * *ldc];                                                   \
            *c = (T)(*alpha * s + (*beta == 0 ? 0 : *beta * *c));                              \
        }                                                                                      \
}
REF_GEMM(ref_sgemm, float)
REF_GEMM(ref_dgemm, double)

static double sig(double x) { return 1 / (1 + exp(-x)); }
static unsigned long long rng = 88172645463325252ULL;
static double uniform(void) {  /* xorshift64, in [-1, 1) */
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0 * 2 - 1;
}
static int failures = 0;
static void expect_close(const char *what, int T, int B, int H, size_t n, const double *want,
                         const double *got, double tol) {
    for (size_t q = 0; q < n; ++q) {
        double err = fabs(got[q] - want[q]), scale = fabs(want[q]) > 1 ? fabs(want[q]) : 1;
        if (!(err <= tol * scale)) {  /* also catches NaN */
            fprintf(stderr, "MISMATCH %s T=%d B=%d H=%d at %zu: got %.9g, want %.9g\n", what, T, B, H, q,
                    got[q], want[q]);
            ++failures;
            return;
        }
    }
}

/* The reference: forward and backward over T steps in double, from the same inputs. */
static void reference(int T, int B, int H, const double *x_gates, const double *W, const double *h0,
                      const double *c0, const double *d_out, const double *d_hn, const double *d_cn,
                      double *act, double *h, double *c, double *dz, double *d_h0, double *d_c0,
                      double *d_hs, double *d_cs) {
    size_t G = (size_t)4 * H, sh = (size_t)B * H, sz = (size_t)B * G;
    memcpy(h, h0, sizeof(double) * sh);
    memcpy(c, c0, sizeof(double) * sh);
    for (int t = 0; t < T; ++t)
        for (int b = 0; b < B; ++b)
            for (int j = 0; j < H; ++j) {
                double z[4];
                for (int q = 0; q < 4; ++q) {
                    z[q] = x_gates[t * sz + b * G + q * H + j];
                    for (int k = 0; k < H; ++k) z[q] += h[t * sh + b * H + k] * W[(q * H + j) * (size_t)H + k];
                }
                double i = sig(z[0]), f = sig(z[1]), g = tanh(z[2]), o = sig(z[3]);
                double *a = &act[t * sz + b * G];
                a[j] = i; a[H + j] = f; a[2 * H + j] = g; a[3 * H + j] = o;
                c[(t + 1) * sh + b * H + j] = f * c[t * sh + b * H + j] + i * g;
                h[(t + 1) * sh + b * H + j] = o * tanh(c[(t + 1) * sh + b * H + j]);
            }
    double *dh = malloc(sizeof(double) * sh), *dc = malloc(sizeof(double) * sh);
    for (size_t q = 0; q < sh; ++q) { dh[q] = d_out[(T - 1) * sh + q] + d_hn[q]; dc[q] = d_cn[q]; }
    for (int t = T - 1; t >= 0; --t) {
        for (int b = 0; b < B; ++b)
            for (int j = 0; j < H; ++j) {
                const double *a = &act[t * sz + b * G];
                double i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
                size_t r = (size_t)b * H + j;
                double tc = tanh(c[(t + 1) * sh + r]);
                double dct = dc[r] + dh[r] * o * (1 - tc * tc);
                double *d = &dz[t * sz + b * G];
                d[j] = dct * g * i * (1 - i);
                d[H + j] = dct * c[t * sh + r] * f * (1 - f);
                d[2 * H + j] = dct * i * (1 - g * g);
                d[3 * H + j] = dh[r] * tc * o * (1 - o);
                d_hs[t * sh + r] = dh[r];
                d_cs[t * sh + r] = dct;
                dc[r] = dct * f;
            }
        for (int b = 0; b < B; ++b)
            for (int k = 0; k < H; ++k) {
                double s = t > 0 ? d_out[(t - 1) * sh + b * H + k] : 0;
                for (size_t q = 0; q < G; ++q) s += dz[t * sz + b * G + q] * W[q * H + k];
                dh[b * H + k] = s;
            }
    }
    memcpy(d_h0, dh, sizeof(double) * sh);
    memcpy(d_c0, dc, sizeof(double) * sh);
    free(dh);
    free(dc);
}

/* Runs fused.c's loops and cells in element type T against the reference and compares. */
#define CHECK(T, GEMM, TOL)                                                                    \
static void check_##T(int T_, int B, int H) {                                                  \
    size_t G = (size_t)4 * H, sh = (size_t)B * H, sz = (size_t)B * G, nz = T_ * sz;            \
    size_t nh = (T_ + 1) * sh, nw = G * H, no = T_ * sh;                                       \
    double *xg = malloc(sizeof(double) * nz), *W = malloc(sizeof(double) * nw);                \
    double *h0 = malloc(sizeof(double) * sh), *c0 = malloc(sizeof(double) * sh);               \
    double *dout = malloc(sizeof(double) * no), *dhn = malloc(sizeof(double) * sh);            \
    double *dcn = malloc(sizeof(double) * sh);                                                 \
    for (size_t q = 0; q < nz; ++q) xg[q] = 2 * uniform();                                     \
    for (size_t q = 0; q < nw; ++q) W[q] = uniform() / sqrt(H);                                \
    for (size_t q = 0; q < sh; ++q) { h0[q] = uniform(); c0[q] = uniform(); }                  \
    for (size_t q = 0; q < no; ++q) dout[q] = uniform();                                       \
    for (size_t q = 0; q < sh; ++q) { dhn[q] = uniform(); dcn[q] = uniform(); }                \
    double *act = malloc(sizeof(double) * nz), *h = malloc(sizeof(double) * nh);               \
    double *c = malloc(sizeof(double) * nh), *dz = malloc(sizeof(double) * nz);                \
    double *dh0 = malloc(sizeof(double) * sh), *dc0 = malloc(sizeof(double) * sh);             \
    double *dhs = malloc(sizeof(double) * no), *dcs = malloc(sizeof(double) * no);             \
    reference(T_, B, H, xg, W, h0, c0, dout, dhn, dcn, act, h, c, dz, dh0, dc0, dhs, dcs);      \
    /* the same in T, through fused.c */                                                       \
    T *g_ = malloc(sizeof(T) * nz), *h_ = malloc(sizeof(T) * nh), *c_ = malloc(sizeof(T) * nh); \
    T *W_ = malloc(sizeof(T) * nw), *o_ = malloc(sizeof(T) * no), *dh_ = malloc(sizeof(T) * sh); \
    T *dc_ = malloc(sizeof(T) * sh), *dhs_ = malloc(sizeof(T) * no), *dcs_ = malloc(sizeof(T) * no); \
    double *back = malloc(sizeof(double) * nz);                                                \
    for (size_t q = 0; q < nz; ++q) g_[q] = (T)xg[q];                                          \
    for (size_t q = 0; q < nw; ++q) W_[q] = (T)W[q];                                           \
    for (size_t q = 0; q < sh; ++q) { h_[q] = (T)h0[q]; c_[q] = (T)c0[q]; }                    \
    for (size_t q = 0; q < no; ++q) o_[q] = (T)dout[q];                                        \
    fwd_loop_##T(T_, B, H, g_, h_, c_, W_, GEMM);                                              \
    for (size_t q = 0; q < nz; ++q) back[q] = g_[q];                                           \
    expect_close("fwd_loop_" #T " activations", T_, B, H, nz, act, back, TOL);                 \
    for (size_t q = 0; q < nh; ++q) back[q] = h_[q];                                           \
    expect_close("fwd_loop_" #T " h", T_, B, H, nh, h, back, TOL);                             \
    for (size_t q = 0; q < nh; ++q) back[q] = c_[q];                                           \
    expect_close("fwd_loop_" #T " c", T_, B, H, nh, c, back, TOL);                             \
    for (size_t q = 0; q < sh; ++q) { dh_[q] = (T)(dout[(T_ - 1) * sh + q] + dhn[q]); dc_[q] = (T)dcn[q]; } \
    bwd_loop_##T(T_, B, H, g_, c_, W_, o_, dh_, dc_, dhs_, dcs_, GEMM);                        \
    for (size_t q = 0; q < nz; ++q) back[q] = g_[q];                                           \
    expect_close("bwd_loop_" #T " dz", T_, B, H, nz, dz, back, TOL);                           \
    for (size_t q = 0; q < sh; ++q) back[q] = dh_[q];                                          \
    expect_close("bwd_loop_" #T " d_h0", T_, B, H, sh, dh0, back, TOL);                        \
    for (size_t q = 0; q < sh; ++q) back[q] = dc_[q];                                          \
    expect_close("bwd_loop_" #T " d_c0", T_, B, H, sh, dc0, back, TOL);                        \
    for (size_t q = 0; q < no; ++q) back[q] = dhs_[q];                                         \
    expect_close("bwd_loop_" #T " d_hs", T_, B, H, no, dhs, back, TOL);                        \
    for (size_t q = 0; q < no; ++q) back[q] = dcs_[q];                                         \
    expect_close("bwd_loop_" #T " d_cs", T_, B, H, no, dcs, back, TOL);                        \
    /* the cells alone, as the oneDNN route calls them: step 0 with `add` = h0 W^T */          \
    T *z1 = malloc(sizeof(T) * sz), *add = malloc(sizeof(T) * sz);                             \
    T *c1 = malloc(sizeof(T) * sh), *h1 = malloc(sizeof(T) * sh), *cp = malloc(sizeof(T) * sh); \
    for (size_t q = 0; q < sz; ++q) z1[q] = (T)xg[q];                                          \
    for (int b = 0; b < B; ++b)                                                                \
        for (size_t q = 0; q < G; ++q) {                                                       \
            double s = 0;                                                                      \
            for (int k = 0; k < H; ++k) s += h0[b * H + k] * W[q * H + k];                     \
            add[b * G + q] = (T)s;                                                             \
        }                                                                                      \
    for (size_t q = 0; q < sh; ++q) cp[q] = (T)c0[q];                                          \
    fwd_cell_##T(B, H, z1, add, cp, c1, h1);                                                   \
    for (size_t q = 0; q < sz; ++q) back[q] = z1[q];                                           \
    expect_close("fwd_cell_" #T " activations", 1, B, H, sz, act, back, TOL);                  \
    for (size_t q = 0; q < sh; ++q) back[q] = h1[q];                                           \
    expect_close("fwd_cell_" #T " h", 1, B, H, sh, h + sh, back, TOL);                         \
    /* backward cell at the last step, without stores (NULL d_hs, d_cs) */                     \
    T *a1 = malloc(sizeof(T) * sz), *ct = malloc(sizeof(T) * sh), *cn = malloc(sizeof(T) * sh); \
    T *dhc = malloc(sizeof(T) * sh), *dcc = malloc(sizeof(T) * sh);                            \
    size_t last = (size_t)(T_ - 1);                                                            \
    for (size_t q = 0; q < sz; ++q) a1[q] = (T)act[last * sz + q];                             \
    for (size_t q = 0; q < sh; ++q) {                                                          \
        ct[q] = (T)c[last * sh + q]; cn[q] = (T)c[(last + 1) * sh + q];                        \
        dhc[q] = (T)(dout[last * sh + q] + dhn[q]); dcc[q] = (T)dcn[q];                        \
    }                                                                                          \
    bwd_cell_##T(B, H, a1, ct, cn, dhc, dcc, NULL, NULL);                                      \
    for (size_t q = 0; q < sz; ++q) back[q] = a1[q];                                           \
    expect_close("bwd_cell_" #T " dz", 1, B, H, sz, dz + last * sz, back, TOL);                \
    void *all[] = {xg, W, h0, c0, dout, dhn, dcn, act, h, c, dz, dh0, dc0, dhs, dcs, g_, h_, c_, W_, \
                   o_, dh_, dc_, dhs_, dcs_, back, z1, add, c1, h1, cp, a1, ct, cn, dhc, dcc};   \
    for (size_t q = 0; q < sizeof all / sizeof *all; ++q) free(all[q]);                        \
}
CHECK(float, ref_sgemm, 2e-5)
CHECK(double, ref_dgemm, 1e-12)

int main(void) {
    /* H = 7, 70: not a multiple of any vector width; B * H = 4160 >= PARALLEL_MIN: the OpenMP branch */
    const int sizes[][3] = {{1, 1, 1}, {3, 2, 7}, {5, 3, 70}, {2, 65, 64}};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; ++s) {
        check_float(sizes[s][0], sizes[s][1], sizes[s][2]);
        check_double(sizes[s][0], sizes[s][1], sizes[s][2]);
    }
    if (failures) {
        fprintf(stderr, "fused self-test FAILED: %d mismatch(es)\n", failures);
        return 1;
    }
    printf("fused self-test ok\n");
    return 0;
}
