// Sufficient statistics of the exact linear association scan (popgen.association).
//
// alt : int8,    shape (n_variants, n_samples), row-major: ALT allele counts 0, 1, 2; -1 missing.
// wg  : float64, shape (n_samples, a),  row-major: per-sample columns summed with weight g.
// wg2 : float64, shape (n_samples, b),  row-major: ... with weight g^2.
// wo  : float64, shape (n_samples, c),  row-major: ... over the missing calls.
// out : float64, shape (n_variants, a + b + c), row-major:
//         out[v, j]         = sum_s g[v, s]   wg[s, j]      (missing calls count 0)
//         out[v, a + j]     = sum_s g[v, s]^2 wg2[s, j]
//         out[v, a + b + j] = sum_{s missing at v} wo[s, j]
//
// One thread per output element (variant, column): a loop over the samples that
// skips calls with weight 0.  Consecutive threads take consecutive columns of
// one variant, so the genotype row is broadcast and the weight rows are read
// coalesced.  (The CPU twin is sparse over calls instead; both equal the three
// GEMMs of linear_partial_block.)
extern "C" __global__ void linear_sums(const signed char* __restrict__ alt,
                                       const double* __restrict__ wg,
                                       const double* __restrict__ wg2,
                                       const double* __restrict__ wo,
                                       double* __restrict__ out,
                                       const long long n_variants,
                                       const long long n_samples,
                                       const long long a,
                                       const long long b,
                                       const long long c) {
    const long long q = a + b + c;
    const long long total = n_variants * q;
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += stride) {
        const long long v = idx / q;
        const long long j = idx - v * q;
        const signed char* row = alt + v * n_samples;
        double acc = 0.0;
        if (j < a) {
            for (long long s = 0; s < n_samples; ++s) {
                const int g = row[s];
                if (g > 0) acc += g * wg[s * a + j];
            }
        } else if (j < a + b) {
            const long long k = j - a;
            for (long long s = 0; s < n_samples; ++s) {
                const int g = row[s];
                if (g > 0) acc += (g * g) * wg2[s * b + k];
            }
        } else {
            const long long k = j - a - b;
            for (long long s = 0; s < n_samples; ++s) {
                if (row[s] < 0) acc += wo[s * c + k];
            }
        }
        out[idx] = acc;
    }
}
