/* Fused expansion of NeRV reference maps (reference.py's stage chain), one neuron at a time.

   For each neuron, its piece GELU(P)/k² (zero-bordered along the width) goes through the
   stages: stage s > 0 first applies its activation and 1/k² in place, then every stage is a
   column pass (an r-periodic filter with integer counts along the width, into a workspace with
   zero rows above and below) and a row pass (the same along the height) that writes whole
   rows of the next stage's input, or of the neuron's output map for the last stage. All of a
   neuron's intermediates stay in cache, so memory traffic is one write of its map. Stage 0 is
   a Box∘Place: its taps depend on the neuron's PixelShuffle phase (id mod r²).

   The layout of the tables is set by xinc/canvas/nerv/fused.py. Single-threaded: the caller
   runs neuron ranges on threads (`xinc.native.split_map`). */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX__) && defined(__FMA__)
#include <immintrin.h>
#endif

enum { ACT_NONE = 0, ACT_GELU = 1, ACT_GELU_TANH = 2 };
enum { G_R, G_PAD, G_ACT, G_PLACED, G_FIELDS };

typedef union { int32_t i; float f; } bits;

/* exp(x) (Cephes' expf polynomial, about 1 ulp), branch-free so loops vectorize. */
static inline float exp_poly(float x) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    float n = __builtin_rintf(x * 1.44269504088896341f);
    float r = __builtin_fmaf(n, -0.693359375f, x);
    r = __builtin_fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = __builtin_fmaf(p, r, 1.3981999507e-3f);
    p = __builtin_fmaf(p, r, 8.3334519073e-3f);
    p = __builtin_fmaf(p, r, 4.1665795894e-2f);
    p = __builtin_fmaf(p, r, 1.6666665459e-1f);
    p = __builtin_fmaf(p, r, 5.0000001201e-1f);
    p = __builtin_fmaf(p, r * r, r) + 1.0f;
    bits scale;
    scale.i = ((int32_t)n + 127) << 23;
    return p * scale.f;
}

/* erf(x) as PyTorch's vectorized CPU kernels compute it (Abramowitz–Stegun 7.1.26). */
static inline float erf_as(float x) {
    float a = __builtin_fabsf(x);
    float t = 1.0f / __builtin_fmaf(0.3275911f, a, 1.0f);
    float r = __builtin_fmaf(1.061405429f, t, -1.453152027f);
    r = __builtin_fmaf(r, t, 1.421413741f);
    r = __builtin_fmaf(r, t, -0.284496736f);
    r = __builtin_fmaf(r, t, 0.254829592f);
    float y = __builtin_fmaf(-exp_poly(-x * x) * t, r, 1.0f);
    return __builtin_copysignf(y, x);
}

/* v[i] = act(v[i])·scale for n values (act(0) = 0, so zero borders stay zero). */
static void activate(float *restrict v, int64_t n, int act, float scale) {
    if (act == ACT_GELU) {
        for (int64_t i = 0; i < n; i++) {
            float x = v[i];
            v[i] = x * 0.5f * (1.0f + erf_as(x * 0.70710678118654752f)) * scale;
        }
    } else if (act == ACT_GELU_TANH) {
        for (int64_t i = 0; i < n; i++) {
            float x = v[i];
            float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
            float th = 1.0f - 2.0f / (exp_poly(2.0f * u) + 1.0f);
            v[i] = 0.5f * x * (1.0f + th) * scale;
        }
    } else if (scale != 1.0f) {
        for (int64_t i = 0; i < n; i++) v[i] *= scale;
    }
}

/* dst[x] = Σ_j count_j · src_j[x] over n values (dst never aliases a source). */
static void combine(float *restrict dst, const float *const *src, const int32_t *count, int nt,
                    int64_t n) {
    if (nt == 0) {
        memset(dst, 0, (size_t)n * sizeof(float));
        return;
    }
    const float *restrict s0 = src[0];
    const float c0 = (float)count[0];
    if (nt == 1) {
        for (int64_t x = 0; x < n; x++) dst[x] = c0 * s0[x];
        return;
    }
    const float *restrict s1 = src[1];
    const float c1 = (float)count[1];
    for (int64_t x = 0; x < n; x++) dst[x] = __builtin_fmaf(c1, s1[x], c0 * s0[x]);
    for (int j = 2; j < nt; j++) {
        const float *restrict sj = src[j];
        const float cj = (float)count[j];
        for (int64_t x = 0; x < n; x++) dst[x] = __builtin_fmaf(cj, sj[x], dst[x]);
    }
}

/* combine() into memory that is not read again soon (the output maps): with non-temporal
   stores where AVX and FMA allow (same arithmetic, so the same values), else plainly. */
static void combine_out(float *restrict dst, const float *const *src, const int32_t *count,
                        int nt, int64_t n) {
#if defined(__AVX__) && defined(__FMA__)
    if (nt >= 1 && !((uintptr_t)dst & 31) && !(n & 7)) {
        for (int64_t x = 0; x < n; x += 8) {
            __m256 acc = _mm256_mul_ps(_mm256_set1_ps((float)count[0]),
                                       _mm256_loadu_ps(src[0] + x));
            for (int j = 1; j < nt; j++)
                acc = _mm256_fmadd_ps(_mm256_set1_ps((float)count[j]),
                                      _mm256_loadu_ps(src[j] + x), acc);
            _mm256_stream_ps(dst + x, acc);
        }
        return;
    }
#endif
    combine(dst, src, count, nt, n);
}

/* row[r·x + q] = phase[q][x] (x < w): the phases of a column pass, interleaved. */
static void interleave(float *restrict row, const float *restrict phase, int r, int64_t w) {
    if (r == 2) {
        for (int64_t x = 0; x < w; x++) {
            row[2 * x] = phase[x];
            row[2 * x + 1] = phase[w + x];
        }
    } else if (r == 4) {
        for (int64_t x = 0; x < w; x++) {
            row[4 * x] = phase[x];
            row[4 * x + 1] = phase[w + x];
            row[4 * x + 2] = phase[2 * w + x];
            row[4 * x + 3] = phase[3 * w + x];
        }
    } else {
        for (int q = 0; q < r; q++)
            for (int64_t x = 0; x < w; x++) row[(int64_t)r * x + q] = phase[q * w + x];
    }
}

/* The taps of stage s, selector sel, output phase q: counts and offsets (tables of native.py:
   taps[s][sel][q][j] = (offset, count), ntaps[s][sel][q], sel < rmax, q < rmax, j < tmax). */
typedef struct {
    const int32_t *taps, *ntaps;
    int rmax, tmax;
} tap_table;

static int tap_row(const tap_table *tt, int s, int sel, int q, int32_t *offset, int32_t *count) {
    int64_t cell = ((int64_t)s * tt->rmax + sel) * tt->rmax + q;
    int nt = tt->ntaps[cell];
    for (int j = 0; j < nt; j++) {
        offset[j] = tt->taps[(cell * tt->tmax + j) * 2];
        count[j] = tt->taps[(cell * tt->tmax + j) * 2 + 1];
    }
    return nt;
}

#define MAX_TAPS 16

/* Maps [n, H, W] of n neurons into `out`.
   pieces: neuron m's piece at pieces + m·piece_stride, h0 rows of `row_stride` floats, each
     w0 values after geom[G_PAD] zeros (and followed by as many);
   ids: the neurons' ids (their PixelShuffle phase is id mod r² of stage 0);
   geom: per stage {r, pad, act, placed}; scale: per stage, 1/k² (stages > 0);
   Returns 0, or −1 when a table is out of range or memory runs out. */
int xinc_expand(const float *pieces, int64_t piece_stride, int64_t row_stride, int h0, int w0,
                const int64_t *ids, int64_t n, int n_stages, const int32_t *geom,
                const float *scale, const int32_t *taps, const int32_t *ntaps, int rmax,
                int tmax, float *out) {
    tap_table tt = {taps, ntaps, rmax, tmax};
    if (tmax > MAX_TAPS || n_stages < 1) return -1;
    /* workspace sizes: stage inputs (bordered), column-pass outputs (bordered), phases */
    int64_t cur_max = 0, tmp_max = 0, phase_max = 0, h = h0, w = w0;
    for (int s = 0; s < n_stages; s++) {
        const int32_t *g = geom + s * G_FIELDS;
        int64_t r = g[G_R], pad = g[G_PAD];
        if (r < 1 || r > rmax) return -1;
        int64_t cur = h * (w + 2 * pad), tmp = (h + 2 * pad) * r * w;
        cur_max = cur > cur_max ? cur : cur_max;
        tmp_max = tmp > tmp_max ? tmp : tmp_max;
        phase_max = r * w > phase_max ? r * w : phase_max;
        h *= r;
        w *= r;
    }
    const int64_t out_h = h, out_w = w;
    float *ping = malloc(sizeof(float) * (size_t)cur_max);
    float *pong = malloc(sizeof(float) * (size_t)cur_max);
    float *tmp = malloc(sizeof(float) * (size_t)tmp_max);
    float *phase = malloc(sizeof(float) * (size_t)phase_max);
    int status = (ping && pong && tmp && phase) ? 0 : -1;
    int32_t offset[MAX_TAPS], count[MAX_TAPS];
    const float *src[MAX_TAPS];
    for (int64_t m = 0; m < n && status == 0; m++) {
        const float *cur = pieces + m * piece_stride;  /* stage 0 reads the caller's piece */
        float *own = NULL, *next = ping;  /* later stages read (and activate) a workspace */
        int64_t cur_stride = row_stride;
        h = h0;
        w = w0;
        for (int s = 0; s < n_stages; s++) {
            const int32_t *g = geom + s * G_FIELDS;
            const int r = g[G_R], pad = g[G_PAD];
            const int last = s == n_stages - 1;
            if (own) activate(own, h * cur_stride, g[G_ACT], scale[s]);
            const int64_t rank = ids[m] % ((int64_t)r * r);
            const int col_sel = g[G_PLACED] ? (int)(rank % r) : 0;
            const int row_sel = g[G_PLACED] ? (int)(rank / r) : 0;
            const int64_t tw = (int64_t)r * w;
            /* column pass: tmp rows pad … pad + h − 1; zero rows around them */
            memset(tmp, 0, sizeof(float) * (size_t)(pad * tw));
            memset(tmp + (pad + h) * tw, 0, sizeof(float) * (size_t)(pad * tw));
            for (int64_t y = 0; y < h; y++) {
                const float *row = cur + y * cur_stride + pad;
                for (int q = 0; q < r; q++) {
                    int nt = tap_row(&tt, s, col_sel, q, offset, count);
                    for (int j = 0; j < nt; j++) src[j] = row + offset[j];
                    combine(phase + q * w, src, count, nt, w);
                }
                interleave(tmp + (pad + y) * tw, phase, r, w);
            }
            /* row pass: into the next stage's bordered input, or the output map */
            const int next_pad = last ? 0 : geom[(s + 1) * G_FIELDS + G_PAD];
            const int64_t next_stride = tw + 2 * next_pad;
            float *dst = last ? out + m * out_h * out_w : next;
            for (int64_t y = 0; y < h; y++) {
                for (int q = 0; q < r; q++) {
                    float *drow = dst + (r * y + q) * next_stride;
                    int nt = tap_row(&tt, s, row_sel, q, offset, count);
                    for (int j = 0; j < nt; j++) src[j] = tmp + (pad + y + offset[j]) * tw;
                    (last ? combine_out : combine)(drow + next_pad, src, count, nt, tw);
                    if (next_pad) {
                        memset(drow, 0, sizeof(float) * (size_t)next_pad);
                        memset(drow + next_pad + tw, 0, sizeof(float) * (size_t)next_pad);
                    }
                }
            }
            cur = own = next;
            cur_stride = next_stride;
            next = next == ping ? pong : ping;
            h *= r;
            w *= r;
        }
    }
#if defined(__AVX__) && defined(__FMA__)
    _mm_sfence();
#endif
    free(ping);
    free(pong);
    free(tmp);
    free(phase);
    return status;
}
