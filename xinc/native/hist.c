/* Histograms of non-negative float32 values by their bit patterns (xinc/stats/mass.py).

   A non-negative float32 is ordered like its bit pattern read as an int32; its high 16 bits
   are its coarse bin. Both kernels read each value once and return the number of values with
   the sign bit set (not binned: the caller raises), so a NaN or negative value is never used
   as an index. The loops add in index order, so float64 sums equal numpy's `bincount`. */

#include <stdint.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

/* count[b] += 1 and mass[b] += v for each of the n values v of coarse bin b. */
int64_t xinc_coarse_hist(const float *values, int64_t n, int64_t *count, double *mass) {
    const int32_t *bits = (const int32_t *)values;
    int64_t negative = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t b = bits[i] >> 16;
        if (b < 0) {
            negative++;
            continue;
        }
        count[b] += 1;
        mass[b] += (double)values[i];
    }
    return negative;
}

/* Keep entry c of a row in the bin: its column and value, while fewer than cap are kept. */
static inline void keep(int32_t *pixel, float *kept, int64_t cap, int64_t *found, int64_t c,
                        float value) {
    if (*found < cap) {
        pixel[*found] = (int32_t)c;
        kept[*found] = value;
    }
    (*found)++;
}

/* For values [rows, cols] and one coarse bin: above[c] += the number of rows whose value in
   column c lies in a higher bin; the column and value of each entry in the bin itself, in
   row-major order, into pixel/kept (at most cap of them). Returns the number in the bin (all
   of them, also beyond cap), or −1 − (number with the sign bit set). With AVX2, eight values
   at a time: a compare gives the above counts and a bit mask of the (few) entries to keep. */
int64_t xinc_tau_scan(const float *values, int64_t rows, int64_t cols, int32_t bin,
                      int32_t *above, int32_t *pixel, float *kept, int64_t cap) {
    const int32_t *bits = (const int32_t *)values;
    int64_t found = 0, negative = 0;
    for (int64_t r = 0; r < rows; r++) {
        const int32_t *row = bits + r * cols;
        const float *vrow = values + r * cols;
        int64_t c = 0;
#if defined(__AVX2__)
        const __m256i target = _mm256_set1_epi32(bin);
        for (; c + 8 <= cols; c += 8) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(row + c));
            __m256i b = _mm256_srai_epi32(v, 16);
            __m256i counts = _mm256_loadu_si256((const __m256i *)(above + c));
            counts = _mm256_sub_epi32(counts, _mm256_cmpgt_epi32(b, target));  /* −(−1) */
            _mm256_storeu_si256((__m256i *)(above + c), counts);
            negative += __builtin_popcount(_mm256_movemask_ps(_mm256_castsi256_ps(v)));
            int mask = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(b, target)));
            while (mask) {
                int j = __builtin_ctz(mask);
                mask &= mask - 1;
                keep(pixel, kept, cap, &found, c + j, vrow[c + j]);
            }
        }
#endif
        for (; c < cols; c++) {
            int32_t b = row[c] >> 16;
            above[c] += b > bin;
            negative += b < 0;
            if (b == bin) keep(pixel, kept, cap, &found, c, vrow[c]);
        }
    }
    return negative ? -1 - negative : found;
}
