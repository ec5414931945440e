"""numba pass of the logistic IRLS iteration on the CPU (popgen.association._Model.newton_terms).

Not a registered kernel: on other backends the same terms come from array
operations (CuPy fuses them well); on the CPU they cost a dozen passes over
(variants x samples) float64 temporaries per iteration, which this one pass
replaces.  Module-level so numba's disk cache finds it again.
"""

import math

import numba
import numpy as np


@numba.njit(nogil=True, cache=True, fastmath=False)
def irls_pass(e_cov, b0, b1, g, w, y, vv, vg, rr, sums):
    """For each variant v and sample s, with ``eta = b0[v] + b1[v] g[v, s] + e_cov[v, s]``
    and ``mu = 1 / (1 + exp(-eta))``:

    ``vv = w mu (1 - mu)`` (Hessian weights), ``vg = vv g``, ``rr = w (mu - y)``
    (gradient residuals), and ``sums[v] = [sum vv, sum vv g, sum vv g^2, sum rr, sum rr g]``.
    """
    n_variants, n_samples = g.shape
    for v in range(n_variants):
        a0 = b0[v]
        a1 = b1[v]
        s1 = 0.0
        sg = 0.0
        sgg = 0.0
        r0 = 0.0
        r1 = 0.0
        ev = e_cov[v]
        gv = g[v]
        wv = w[v]
        vvv = vv[v]
        vgv = vg[v]
        rrv = rr[v]
        for s in range(n_samples):
            x = gv[s]
            eta = a0 + a1 * x + ev[s]
            mu = 1.0 / (1.0 + math.exp(-eta))
            ws = wv[s]
            h = ws * mu * (1.0 - mu)
            r = ws * (mu - y[s])
            vvv[s] = h
            vgv[s] = h * x
            rrv[s] = r
            s1 += h
            sg += h * x
            sgg += h * x * x
            r0 += r
            r1 += r * x
        sums[v, 0] = s1
        sums[v, 1] = sg
        sums[v, 2] = sgg
        sums[v, 3] = r0
        sums[v, 4] = r1
