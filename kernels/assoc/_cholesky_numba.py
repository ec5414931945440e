"""numba batched inverse of small symmetric positive definite matrices (CPU path of
popgen.association._cholesky_inverse; other backends use the array-namespace code).

Module-level so numba's disk cache finds it again.
"""

import math

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def _cholesky_inverse_one(A, out, L, M):
    """:func:`cholesky_inverse` of one matrix ``A`` into ``out`` (``L``, ``M``: p x p scratch);
    returns ``(logdet, ok)``."""
    p = A.shape[0]
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
    for r in range(p):                       # inv = M' M
        for c in range(r, p):
            v = 0.0
            for k in range(c, p):
                v += M[k, r] * M[k, c]
            out[r, c] = v
            out[c, r] = v
    return ld, good


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
        logdet[i], ok[i] = _cholesky_inverse_one(a[i], inv[i], L, M)


@numba.njit(nogil=True, cache=True)
def sym_inverse_one(A, out, s, scaled, L, M):
    """:func:`sym_inverse` of one matrix ``A`` (p x p) into ``out``; ``s`` (p,), ``scaled``, ``L``,
    ``M`` (p x p): scratch.  Returns ``(logdet, ok)``."""
    p = A.shape[0]
    good = True
    for r in range(p):
        for c in range(p):
            if not np.isfinite(A[r, c]):
                good = False
        if not (A[r, r] > 0):
            good = False
    if not good:
        for r in range(p):
            for c in range(p):
                out[r, c] = 1.0 if r == c else 0.0
        return 0.0, False
    ld = 0.0
    for r in range(p):
        s[r] = 1.0 / math.sqrt(A[r, r])
        ld += math.log(A[r, r])
    for r in range(p):
        for c in range(p):
            scaled[r, c] = A[r, c] * s[r] * s[c]
    one_ld, one_ok = _cholesky_inverse_one(scaled, out, L, M)
    for r in range(p):
        for c in range(p):
            out[r, c] = out[r, c] * s[r] * s[c]
    return one_ld + ld, one_ok


@numba.njit(nogil=True, cache=True)
def sym_inverse(a, inv, logdet, ok):
    """popgen.association._sym_inverse for a batch ``a`` (n, p, p): Jacobi scaling to unit
    diagonal, :func:`cholesky_inverse`, scaling back.  Matrices with a non-finite entry or a
    non-positive diagonal give the identity, ``logdet`` 0 and ``ok`` False."""
    n, p, _ = a.shape
    s = np.empty(p)
    scaled = np.empty((p, p))
    L = np.zeros((p, p))
    M = np.zeros((p, p))
    for i in range(n):
        logdet[i], ok[i] = sym_inverse_one(a[i], inv[i], s, scaled, L, M)
