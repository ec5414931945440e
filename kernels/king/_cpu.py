"""The CPU twins' numba functions of :mod:`popgen.kernels.king` (imported on first use).

Module-level, not closures: numba's on-disk cache keys a closure by its cell contents
(here the intrinsics and dispatchers, different objects in every process), so closures
were compiled again in every process and added a cache entry each time.
"""

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic


@intrinsic
def popcount(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


@numba.njit(nogil=True, cache=True)
def counts(pi, pj, out, j_block, below):
    s_i, n_words = pi.shape[0], pi.shape[2]
    s_j = pj.shape[0]
    # j in cache blocks (j_block samples' planes stay in L2 while i sweeps)
    for jb in range(0, s_j, j_block):
        je = min(jb + j_block, s_j)
        for i in range(s_i):
            ci, hi, ri, ai = pi[i, 0], pi[i, 1], pi[i, 2], pi[i, 3]
            stop = je if below < 0 else min(je, i + below)  # only pairs with j < i + below
            for j in range(jb, stop):
                cj, hj, rj, aj = pj[j, 0], pj[j, 1], pj[j, 2], pj[j, 3]
                nsnp = numba.uint64(0)
                hethet = numba.uint64(0)
                ibs0 = numba.uint64(0)
                het1 = numba.uint64(0)
                het2 = numba.uint64(0)
                for w in range(n_words):  # contiguous per plane: LLVM vectorizes this loop
                    nsnp += popcount(ci[w] & cj[w])
                    hethet += popcount(hi[w] & hj[w])
                    ibs0 += popcount((ri[w] & aj[w]) | (ai[w] & rj[w]))
                    het1 += popcount(hi[w] & cj[w])
                    het2 += popcount(ci[w] & hj[w])
                out[0, i, j] = nsnp
                out[1, i, j] = hethet
                out[2, i, j] = ibs0
                out[3, i, j] = het1
                out[4, i, j] = het2


@numba.njit(nogil=True, cache=True)
def pack(alt, out):
    n_variants, n_samples = alt.shape
    n_words = out.shape[2]
    one = numba.uint64(1)
    for w in range(n_words):
        v0 = 64 * w
        v1 = min(v0 + 64, n_variants)
        for s in range(n_samples):
            c = numba.uint64(0)
            h = numba.uint64(0)
            r = numba.uint64(0)
            a = numba.uint64(0)
            for v in range(v0, v1):
                g = alt[v, s]
                bit = one << numba.uint64(v - v0)
                if g >= 0:
                    c |= bit
                if g == 1:
                    h |= bit
                elif g == 0:
                    r |= bit
                elif g == 2:
                    a |= bit
            out[s, 0, w] = c
            out[s, 1, w] = h
            out[s, 2, w] = r
            out[s, 3, w] = a


@numba.njit(nogil=True, cache=True)
def standardize(codes, w0, tt, out):
    # tt: (words, 4, 64), the table of words w0.. by code and bit.  Per bit, code
    # (lo, hi) = (het or missing, hom ALT or missing): 00 hom REF, 10 het, 01 hom ALT,
    # 11 missing; branch-free selects over the 64 bits of a word, which LLVM vectorizes
    n_samples = codes.shape[0]
    n_words = out.shape[1] // 64
    one = numba.uint64(1)
    for s in range(n_samples):
        for w in range(n_words):
            lo = codes[s, 0, w0 + w]
            hi = codes[s, 1, w0 + w]
            t0, t1, t2, t3 = tt[w, 0], tt[w, 1], tt[w, 2], tt[w, 3]
            base = 64 * w
            for b in range(64):
                lb = (lo >> numba.uint64(b)) & one
                hb = (hi >> numba.uint64(b)) & one
                out[s, base + b] = (t3[b] if hb else t1[b]) if lb else (t2[b] if hb else t0[b])


# ------------------------------------------------------------------ called in both (missing calls)


@intrinsic
def cttz(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], context.get_constant(types.boolean, False))

    return types.uint64(types.uint64), codegen


@numba.njit(nogil=True, cache=True)
def lists(codes, valid):
    """Missing calls (code 11) by variant bit: CSR (indptr over bits, sample indices)."""
    s, n_words = codes.shape[0], codes.shape[2]
    indptr = np.zeros(64 * n_words + 1, dtype=np.int64)
    for i in range(s):
        for w in range(n_words):
            m = codes[i, 0, w] & codes[i, 1, w] & valid[w]
            while m:
                b = cttz(m)
                indptr[64 * w + b + 1] += 1
                m &= m - numba.uint64(1)
    for k in range(64 * n_words):
        indptr[k + 1] += indptr[k]
    fill = indptr[:-1].copy()
    samples = np.empty(indptr[-1], dtype=np.int64)
    for i in range(s):
        for w in range(n_words):
            m = codes[i, 0, w] & codes[i, 1, w] & valid[w]
            while m:
                k = 64 * w + cttz(m)
                samples[fill[k]] = i
                fill[k] += 1
                m &= m - numba.uint64(1)
    return indptr, samples


@numba.njit(nogil=True, cache=True)
def cost(ip_i, ip_j):
    c = 0
    for k in range(ip_i.shape[0] - 1):
        c += (ip_i[k + 1] - ip_i[k]) * (ip_j[k + 1] - ip_j[k])
    return c


@numba.njit(nogil=True, cache=True)
def both(ip_i, sm_i, ip_j, sm_j, out):
    for k in range(ip_i.shape[0] - 1):
        for a in range(ip_i[k], ip_i[k + 1]):
            i = sm_i[a]
            for b in range(ip_j[k], ip_j[k + 1]):
                out[i, sm_j[b]] += 1
