"""numba batched inverse of small symmetric positive definite matrices (CPU path of
popgen.association._cholesky_inverse; other backends use the array-namespace code).

Module-level so numba's disk cache finds it again.
"""

import math

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def cholesky_inverse(a, inv, logdet, ok):
    """For each ``a[i]`` (p x p, symmetric, meant unit-diagonal): Cholesky ``L L' = a[i]``,
    ``inv[i] = a[i]^-1``, ``logdet[i]`` and ``ok[i]`` (every squared pivot above 1e-12).
    A pivot that is not above 1e-12 is replaced by 1 (the result is then finite but meaningless),
    as the namespace code does."""
    n, p, _ = a.shape
    L = np.zeros((p, p))
    M = np.zeros((p, p))
    for i in range(n):
        A = a[i]
        good = True
        ld = 0.0
        for j in range(p):
            for r in range(j, p):
                v = A[r, j]
                for k in range(j):
                    v -= L[r, k] * L[j, k]
                if r == j:
                    if not (v > 1e-12):
                        good = False
                        v = 1.0
                    ld += math.log(v)
                    L[j, j] = math.sqrt(v)
                else:
                    L[r, j] = v / L[j, j]
        for c in range(p):                       # M = L^-1, lower triangular
            for r in range(p):
                M[r, c] = 0.0
            M[c, c] = 1.0 / L[c, c]
            for r in range(c + 1, p):
                v = 0.0
                for k in range(c, r):
                    v -= L[r, k] * M[k, c]
                M[r, c] = v / L[r, r]
        out = inv[i]
        for r in range(p):                       # inv = M' M
            for c in range(r, p):
                v = 0.0
                for k in range(c, p):
                    v += M[k, r] * M[k, c]
                out[r, c] = v
                out[c, r] = v
        logdet[i] = ld
        ok[i] = good


@numba.njit(nogil=True, cache=True)
def sym_inverse(a, inv, logdet, ok):
    """popgen.association._sym_inverse for a batch ``a`` (n, p, p): Jacobi scaling to unit
    diagonal, :func:`cholesky_inverse`, scaling back.  Matrices with a non-finite entry or a
    non-positive diagonal give the identity, ``logdet`` 0 and ``ok`` False."""
    n, p, _ = a.shape
    scaled = np.empty((1, p, p))
    one_inv = np.empty((1, p, p))
    one_ld = np.empty(1)
    one_ok = np.empty(1, dtype=np.bool_)
    s = np.empty(p)
    for i in range(n):
        A = a[i]
        good = True
        for r in range(p):
            for c in range(p):
                if not np.isfinite(A[r, c]):
                    good = False
            if not (A[r, r] > 0):
                good = False
        out = inv[i]
        if not good:
            for r in range(p):
                for c in range(p):
                    out[r, c] = 1.0 if r == c else 0.0
            logdet[i] = 0.0
            ok[i] = False
            continue
        ld = 0.0
        for r in range(p):
            s[r] = 1.0 / math.sqrt(A[r, r])
            ld += math.log(A[r, r])
        for r in range(p):
            for c in range(p):
                scaled[0, r, c] = A[r, c] * s[r] * s[c]
        cholesky_inverse(scaled, one_inv, one_ld, one_ok)
        for r in range(p):
            for c in range(p):
                out[r, c] = one_inv[0, r, c] * s[r] * s[c]
        logdet[i] = one_ld[0] + ld
        ok[i] = one_ok[0]
