// Private to the kernels: the AVX2 even/odd split shared by the Winograd transforms and the
// stride-2 im2col.
#ifndef JEM_SPLIT_EVEN_ODD_H
#define JEM_SPLIT_EVEN_ODD_H
#include <immintrin.h>

// ev[k] = row[2k], od[k] = row[2k + 1] for k < 8·blocks: reads 16·blocks floats of row, writes
// 8·blocks floats to each of ev and od (8 pairs per block: one shuffle and one lane permute each).
static inline void jem_split_even_odd(const float* row, int blocks, float* ev, float* od) {
    for (int j = 0; j < blocks; j++) {
        const __m256 lo = _mm256_loadu_ps(row + 16 * j), hi = _mm256_loadu_ps(row + 16 * j + 8);
        _mm256_storeu_ps(ev + 8 * j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0x88)), 0xD8)));
        _mm256_storeu_ps(od + 8 * j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0xDD)), 0xD8)));
    }
}
#endif
