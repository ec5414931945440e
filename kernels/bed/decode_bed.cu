// Decode PLINK 1 .bed variant-major 2-bit genotypes into ALT allele counts.
//
// packed : uint8,  shape (n_variants, n_bytes), row-major; 4 samples per byte,
//          sample j of a row in bits 2*(j%4)..2*(j%4)+1 of byte j/4.
// out    : int8,   shape (n_variants, n_samples), row-major.
//
// .bim column 5 (A1) is ALT and column 6 (A2) is REF, as PLINK 2 reads them:
//   00 -> 2 (hom A1)   01 -> -1 (missing)   10 -> 1 (het)   11 -> 0 (hom A2)
// One thread per output call; rows are independent, so any grid works.
extern "C" __global__ void decode_bed(const unsigned char* __restrict__ packed,
                                      signed char* __restrict__ out,
                                      const long long n_variants,
                                      const long long n_bytes,
                                      const long long n_samples) {
    const long long total = n_variants * n_samples;
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += stride) {
        const long long v = idx / n_samples;
        const long long s = idx - v * n_samples;
        const unsigned char byte = packed[v * n_bytes + (s >> 2)];
        const int code = (byte >> ((s & 3) * 2)) & 3;
        // branch-free lookup of {2, -1, 1, 0}
        out[idx] = (signed char)(code == 0 ? 2 : (code == 1 ? -1 : (code == 2 ? 1 : 0)));
    }
}
