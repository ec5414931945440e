// KING-robust pair counts from bit-packed genotype planes (AND + popcount).
//
// planes_i : uint64, shape (s_i, 4, n_words), row-major; planes_j : (s_j, 4, n_words).
//            For sample s, plane p and word w (variants 64w .. 64w+63, bit k =
//            variant 64w+k): p = 0 called, 1 heterozygous, 2 homozygous REF,
//            3 homozygous ALT.  Padding bits (past the last variant) are 0.
// out      : int32, shape (5, s_i, s_j), row-major; for each pair (i, j), over the
//            variants called in both samples:
//              0 NSNP    called in both
//              1 HETHET  heterozygous in both
//              2 IBS0    opposite homozygotes
//              3 HET1    heterozygous in i (called in j)
//              4 HET2    heterozygous in j (called in i)
//
// One thread per pair.  A block computes a TILE x TILE tile of pairs and stages
// KW words of the four planes of its TILE i-samples and TILE j-samples in shared
// memory (rows padded by one word), like a tiled GEMM with AND + popcount as the
// multiply-add.  Loads are coalesced: consecutive threads read consecutive words.
#define TILE 16
#define KW 16
#define PAD (KW + 1)

extern "C" __global__ void king_counts(const unsigned long long* __restrict__ planes_i,
                                       const unsigned long long* __restrict__ planes_j,
                                       int* __restrict__ out,
                                       const long long s_i,
                                       const long long s_j,
                                       const long long n_words) {
    __shared__ unsigned long long ti[TILE][4][PAD];
    __shared__ unsigned long long tj[TILE][4][PAD];
    const int tx = threadIdx.x;
    const int ty = threadIdx.y;
    const long long i0 = (long long)blockIdx.y * TILE;
    const long long j0 = (long long)blockIdx.x * TILE;
    unsigned int nsnp = 0, hethet = 0, ibs0 = 0, het1 = 0, het2 = 0;
    for (long long w0 = 0; w0 < n_words; w0 += KW) {
        for (int k = ty * TILE + tx; k < TILE * 4 * KW; k += TILE * TILE) {
            const int r = k / (4 * KW);
            const int p = (k / KW) % 4;
            const int c = k % KW;
            const long long w = w0 + c;
            const long long gi = i0 + r;
            const long long gj = j0 + r;
            ti[r][p][c] = (gi < s_i && w < n_words) ? planes_i[(gi * 4 + p) * n_words + w] : 0ULL;
            tj[r][p][c] = (gj < s_j && w < n_words) ? planes_j[(gj * 4 + p) * n_words + w] : 0ULL;
        }
        __syncthreads();
#pragma unroll
        for (int c = 0; c < KW; ++c) {
            const unsigned long long ci = ti[ty][0][c], hi = ti[ty][1][c], ri = ti[ty][2][c], ai = ti[ty][3][c];
            const unsigned long long cj = tj[tx][0][c], hj = tj[tx][1][c], rj = tj[tx][2][c], aj = tj[tx][3][c];
            nsnp += __popcll(ci & cj);
            hethet += __popcll(hi & hj);
            ibs0 += __popcll((ri & aj) | (ai & rj));
            het1 += __popcll(hi & cj);
            het2 += __popcll(ci & hj);
        }
        __syncthreads();
    }
    const long long i = i0 + ty;
    const long long j = j0 + tx;
    if (i < s_i && j < s_j) {
        const long long plane = s_i * s_j;
        const long long at = i * s_j + j;
        out[at] = (int)nsnp;
        out[plane + at] = (int)hethet;
        out[2 * plane + at] = (int)ibs0;
        out[3 * plane + at] = (int)het1;
        out[4 * plane + at] = (int)het2;
    }
}
