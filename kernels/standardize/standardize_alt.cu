// Standardize ALT allele counts with a per-variant lookup table.
//
// alt   : int8,    shape (n_variants, n_samples), row-major; 0, 1, 2 or -1 (missing)
// table : float32, shape (n_variants, 4), row-major; values for g = 0, 1, 2 and missing
// out   : float32, shape (n_variants, n_samples), row-major
//
// out[v, s] = table[v, g] with g = alt[v, s] (3 where missing).  One thread per call.
extern "C" __global__ void standardize_alt(const signed char* __restrict__ alt,
                                           const float* __restrict__ table,
                                           float* __restrict__ out,
                                           const long long n_variants,
                                           const long long n_samples) {
    const long long total = n_variants * n_samples;
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const long long v = idx / n_samples;
        const int g = alt[idx];
        out[idx] = table[v * 4 + (g < 0 ? 3 : g)];
    }
}
