// Standardized genotypes from 2-bit genotype code planes (popgen.relatedness.genotype_codes).
//
// planes : uint64, shape (s, 2, n_words), row-major; per variant bit (lo, hi) =
//          00 hom REF, 10 het, 01 hom ALT, 11 missing; bit k of word w is variant bit 64w+k.
// table  : float (or double), shape (64 n_words, 4): the value of each variant bit
//          for ALT count 0, 1, 2 and missing (column 3).
// out    : same type, shape (s, 64 n_out_words), row-major:
//          out[i, k] = table[64 w0 + k, g(i, 64 w0 + k)].
// One thread per output element (grid-stride).
template <typename T>
__device__ void standardize(const unsigned long long* __restrict__ planes, const T* __restrict__ table,
                            T* __restrict__ out, long long s, long long n_words, long long w0, long long n_out_words) {
    const long long width = 64 * n_out_words;
    const long long total = s * width;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (long long)blockDim.x * gridDim.x) {
        const long long i = idx / width;
        const long long k = idx % width;
        const long long w = w0 + k / 64;
        const int b = (int)(k % 64);
        const unsigned long long* p = planes + i * 2 * n_words + w;
        const int lo = (int)((p[0] >> b) & 1ULL);
        const int hi = (int)((p[n_words] >> b) & 1ULL);
        const int code = lo + 2 * hi;  // 0 hom REF, 1 het, 2 hom ALT, 3 missing: the table's columns
        out[idx] = table[(64 * w + b) * 4 + code];
    }
}

extern "C" __global__ void standardize_planes_f64(const unsigned long long* planes, const double* table, double* out,
                                                  long long s, long long n_words, long long w0, long long n_out_words) {
    standardize<double>(planes, table, out, s, n_words, w0, n_out_words);
}

extern "C" __global__ void standardize_planes_f32(const unsigned long long* planes, const float* table, float* out,
                                                  long long s, long long n_words, long long w0, long long n_out_words) {
    standardize<float>(planes, table, out, s, n_words, w0, n_out_words);
}
