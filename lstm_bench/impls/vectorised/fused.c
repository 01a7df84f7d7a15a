/* The LSTM cell's elementwise work, and the whole step loop, for the vectorised path
   (lstm_bench/impls/vectorised/fused.py builds, hashes and loads this file; read its docstring).

   Equations (Greff et al. 2017, arXiv:1503.04069), gates in torch's order i, f, g, o:
     forward   i, f, o = sigmoid(z), g = tanh(z), c_t = f c_{t-1} + i g, h_t = o tanh(c_t)
     backward  d_c = d_c_next + d_h o (1 - tanh(c_t)^2)
               dz = [d_c g i(1-i), d_c c_{t-1} f(1-f), d_c i (1-g^2), d_h tanh(c_t) o(1-o)]
               d_c_next = d_c f,  d_h_{t-1} = d_output_{t-1} + dz W_hh
   Shapes are row-major: gates (T, B, 4H), h and c (T+1, B, H), W = weight_hh (4H, H).
   The step GEMM is the Fortran BLAS sgemm_/dgemm_ that torch links (column-major, 32-bit
   integers), passed in as a function pointer.

   Compiled with -Wall -Wextra -Werror and its C self-test (tests/fused_selftest.c) run under
   -fsanitize=address,undefined by tests/test_fused_c.py. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <stddef.h>

/* Below this many (b, j) units a step's cell runs on one thread: a parallel region costs
   a few microseconds, more than the work it would split. */
#define PARALLEL_MIN 4096

typedef void (*sgemm_t)(const char*, const char*, const int*, const int*, const int*, const float*,
                        const float*, const int*, const float*, const int*, const float*, float*, const int*);
typedef void (*dgemm_t)(const char*, const char*, const int*, const int*, const int*, const double*,
                        const double*, const int*, const double*, const int*, const double*, double*, const int*);

/* Cephes expf: x = n ln2 + r, exp(r) by a degree-7 polynomial, times 2^n. Branch-free. */
static inline float exp_f32(float x) {
    x = x < -87.0f ? -87.0f : x;   /* comparisons keep NaN */
    x = x > 88.0f ? 88.0f : x;
    float n = __builtin_rintf(x * 1.44269504088896341f);
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500E-4f;
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &e, sizeof s);
    return p * s;
}
static inline float sigmoid_f32(float x) { return 1.0f / (1.0f + exp_f32(-x)); }
/* Cephes tanhf: odd polynomial for |x| < 0.625, 1 - 2/(exp(2|x|)+1) above. */
static inline float tanh_f32(float x) {
    float ax = fabsf(x);
    float big = 1.0f - 2.0f / (exp_f32(2.0f * ax) + 1.0f);
    float z = x * x;
    float small = ((((-5.70498872745E-3f * z + 2.06390887954E-2f) * z - 5.37397155531E-2f) * z
                   + 1.33314422036E-1f) * z - 3.33332819422E-1f) * z * ax + ax;
    float t = ax < 0.625f ? small : big;
    return copysignf(t, x);
}
static inline double sigmoid_f64(double x) { return 1.0 / (1.0 + exp(-x)); }
static inline double tanh_f64(double x) { return tanh(x); }

/* One step's forward elementwise work, in place. z (B, 4H): pre-activations i, f, g, o
   (plus `add` (B, 4H) when not NULL), overwritten with the activations; c_prev, c, h (B, H). */
#define FWD_CELL(T, SIG, TANH)                                                                  \
static inline void fwd_row_##T(int H, T *restrict zi, T *restrict zf, T *restrict zg,           \
                               T *restrict zo, const T *restrict cp, T *restrict cb,            \
                               T *restrict hb) {                                                \
    for (int j = 0; j < H; ++j) {                                                               \
        T i = SIG(zi[j]), f = SIG(zf[j]), g = TANH(zg[j]), o = SIG(zo[j]);                       \
        zi[j] = i; zf[j] = f; zg[j] = g; zo[j] = o;                                             \
        T cn = f * cp[j] + i * g;                                                               \
        cb[j] = cn;                                                                             \
        hb[j] = o * TANH(cn);                                                                   \
    }                                                                                           \
}                                                                                               \
void fwd_cell_##T(int B, int H, T *restrict z, const T *restrict add, const T *restrict c_prev, \
                  T *restrict c, T *restrict h) {                                               \
    _Pragma("omp parallel for schedule(static) if (B > 1 && (long)B * H >= PARALLEL_MIN)")      \
    for (int b = 0; b < B; ++b) {                                                               \
        T *zb = z + (size_t)b * 4 * H;                                                          \
        if (add) {                                                                              \
            const T *restrict ab = add + (size_t)b * 4 * H;                                     \
            for (int k = 0; k < 4 * H; ++k) zb[k] += ab[k];                                     \
        }                                                                                       \
        fwd_row_##T(H, zb, zb + H, zb + 2 * H, zb + 3 * H, c_prev + (size_t)b * H,              \
                    c + (size_t)b * H, h + (size_t)b * H);                                      \
    }                                                                                           \
}

/* One step's backward elementwise work. a (B, 4H): activations i, f, g, o of step t,
   overwritten with dz_t. c_prev = c_{t-1}, c = c_t, d_h = total dL/dh_t, d_c: dL/dc_t from
   step t+1 on entry, d_c * f (for step t-1) on exit. d_hs, d_cs: where to store d_h and the
   total d_c of this step, or NULL. */
#define BWD_CELL(T, TANH)                                                                       \
static inline void bwd_row_##T(int H, int store, T *restrict ai, const T *restrict cp,          \
                               const T *restrict cb, const T *restrict dh, T *restrict dc,      \
                               T *restrict dcs) {                                               \
    T *restrict af = ai + H, *restrict ag = af + H, *restrict ao = ag + H;                      \
    for (int j = 0; j < H; ++j) {                                                               \
        T i = ai[j], f = af[j], g = ag[j], o = ao[j];                                           \
        T tc = TANH(cb[j]);                                                                     \
        T dct = dc[j] + dh[j] * o * (1 - tc * tc);                                              \
        ai[j] = dct * g * (i - i * i);                                                          \
        af[j] = dct * cp[j] * (f - f * f);                                                      \
        ag[j] = dct * i * (1 - g * g);                                                          \
        ao[j] = dh[j] * tc * (o - o * o);                                                       \
        dc[j] = dct * f;                                                                        \
        if (store) dcs[j] = dct;                                                                \
    }                                                                                           \
}                                                                                               \
void bwd_cell_##T(int B, int H, T *restrict a, const T *restrict c_prev, const T *restrict c,   \
                  const T *restrict d_h, T *restrict d_c, T *restrict d_hs, T *restrict d_cs) { \
    _Pragma("omp parallel for schedule(static) if (B > 1 && (long)B * H >= PARALLEL_MIN)")      \
    for (int b = 0; b < B; ++b) {                                                               \
        size_t r = (size_t)b * H;                                                               \
        T *ai = a + (size_t)b * 4 * H;                                                          \
        if (d_cs) {                                                                             \
            bwd_row_##T(H, 1, ai, c_prev + r, c + r, d_h + r, d_c + r, d_cs + r);               \
        } else {                                                                                \
            bwd_row_##T(H, 0, ai, c_prev + r, c + r, d_h + r, d_c + r, NULL);                   \
        }                                                                                       \
        if (d_hs) memcpy(d_hs + r, d_h + r, sizeof(T) * H);                                     \
    }                                                                                           \
}

FWD_CELL(float, sigmoid_f32, tanh_f32)
FWD_CELL(double, sigmoid_f64, tanh_f64)
BWD_CELL(float, tanh_f32)
BWD_CELL(double, tanh_f64)

/* The whole forward recurrence. gates (T, B, 4H) holds x W_ih^T + bias on entry, the
   activations on exit; h, c (T+1, B, H) with h_0, c_0 filled; W (4H, H) = weight_hh,
   row-major. Step t: gates_t += h_{t-1} W^T (column-major: gates_t^T += W h^T), then the cell. */
#define FWD_LOOP(T, GEMM_T)                                                                     \
void fwd_loop_##T(int T_, int B, int H, T *gates, T *h, T *c, const T *W, GEMM_T gemm) {        \
    const int m = 4 * H, n = B, k = H, ldw = H, ldh = H, ldz = 4 * H;                            \
    const T one = 1;                                                                            \
    const size_t sz = (size_t)B * 4 * H, sh = (size_t)B * H;                                    \
    for (int t = 0; t < T_; ++t) {                                                              \
        T *z = gates + t * sz;                                                                  \
        gemm("T", "N", &m, &n, &k, &one, W, &ldw, h + t * sh, &ldh, &one, z, &ldz);               \
        fwd_cell_##T(B, H, z, NULL, c + t * sh, c + (t + 1) * sh, h + (t + 1) * sh);              \
    }                                                                                           \
}

/* The whole backward recurrence, t = T..1. gates (T, B, 4H): activations on entry, dz on
   exit. d_output (T, B, H). d_h (B, H): d_output_T + d_h_n on entry, dL/dh_0 on exit.
   d_c (B, H): d_c_n on entry, dL/dc_0 on exit. d_hs, d_cs (T, B, H) or NULL.
   d_h_{t-1} = d_output_{t-1} + dz_t W (column-major: d_h^T = W^T dz^T). */
#define BWD_LOOP(T, GEMM_T)                                                                     \
void bwd_loop_##T(int T_, int B, int H, T *gates, const T *c, const T *W, const T *d_output,     \
                  T *d_h, T *d_c, T *d_hs, T *d_cs, GEMM_T gemm) {                              \
    const int m = H, n = B, k = 4 * H, ldw = H, ldz = 4 * H, ldh = H;                            \
    const T one = 1, zero = 0;                                                                  \
    const size_t sz = (size_t)B * 4 * H, sh = (size_t)B * H;                                    \
    for (int t = T_ - 1; t >= 0; --t) {                                                         \
        T *a = gates + t * sz;                                                                  \
        bwd_cell_##T(B, H, a, c + t * sh, c + (t + 1) * sh, d_h, d_c,                           \
                     d_hs ? d_hs + t * sh : NULL, d_cs ? d_cs + t * sh : NULL);                 \
        if (t > 0) {                                                                            \
            memcpy(d_h, d_output + (t - 1) * sh, sizeof(T) * sh);                               \
            gemm("N", "N", &m, &n, &k, &one, W, &ldw, a, &ldz, &one, d_h, &ldh);                 \
        } else {                                                                                \
            gemm("N", "N", &m, &n, &k, &one, W, &ldw, a, &ldz, &zero, d_h, &ldh);                \
        }                                                                                       \
    }                                                                                           \
}

FWD_LOOP(float, sgemm_t)
FWD_LOOP(double, dgemm_t)
BWD_LOOP(float, sgemm_t)
BWD_LOOP(double, dgemm_t)
