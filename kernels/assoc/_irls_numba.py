"""numba passes of the logistic IRLS iterations on the CPU (popgen.association._Model).

Not registered kernels: on other backends the same terms come from array
operations (CuPy fuses them well); on the CPU they cost a dozen passes over
(variants x samples) float64 temporaries per iteration, which these replace.
Module-level so numba's disk cache finds them again.

Each pass is split around ``numpy.exp``: numba calls libm's scalar ``exp``
(~9 ns per element here, which stops the loop from vectorizing) where NumPy's
SIMD ``exp`` takes ~1 ns; without the call the loops vectorize (reassociated
sums; infinities and NaN keep their IEEE meaning).  ``error_model="numpy"``:
numba's default checks every float division for a zero divisor (to raise
ZeroDivisionError), and that branch stopped ``1 / (1 + exp(-eta))`` from
vectorizing (the residual pass took 19 instead of 10 us per 10,000 samples).
"""

import math

import numba
import numpy as np

_FASTMATH = {"reassoc", "contract", "nsz"}


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, error_model="numpy")
def _neg_eta(e_cov, b0, b1, g, rows):
    """``e_cov[v, s] <- -(b0[v] + b1[v] g[rows[v], s] + e_cov[v, s])`` in place."""
    n_variants, n_samples = e_cov.shape
    for v in range(n_variants):
        a0 = b0[v]
        a1 = b1[v]
        ev = e_cov[v]
        gv = g[rows[v]]
        for s in range(n_samples):
            ev[s] = -(a0 + a1 * gv[s] + ev[s])


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, error_model="numpy")
def _newton_from_exp(ex, g, w, y, rows, vv, vg, rr, sums):
    """From ``ex = exp(-eta)``: ``mu = 1 / (1 + ex)``, ``vv = w mu (1 - mu)``, ``vg = vv g``,
    ``rr = w (mu - y)`` and ``sums[v] = [sum vv, sum vv g, sum vv g^2, sum rr, sum rr g]``.
    ``rr`` may be ``ex`` (each element is read before it is written)."""
    n_variants, n_samples = ex.shape
    for v in range(n_variants):
        s1 = 0.0
        sg = 0.0
        sgg = 0.0
        r0 = 0.0
        r1 = 0.0
        exv = ex[v]
        gv = g[rows[v]]
        wv = w[rows[v]]
        vvv = vv[v]
        vgv = vg[v]
        rrv = rr[v]
        for s in range(n_samples):
            x = gv[s]
            mu = 1.0 / (1.0 + exv[s])
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


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, error_model="numpy")
def _residual_from_exp(ex, g, w, y, rows, rr, sums):
    """From ``ex = exp(-eta)``: ``rr = w (mu - y)`` and ``sums[v] = [sum rr, sum rr g]``
    (``rr`` may be ``ex``)."""
    n_variants, n_samples = ex.shape
    for v in range(n_variants):
        r0 = 0.0
        r1 = 0.0
        exv = ex[v]
        gv = g[rows[v]]
        wv = w[rows[v]]
        rrv = rr[v]
        for s in range(n_samples):
            r = wv[s] * (1.0 / (1.0 + exv[s]) - y[s])
            rrv[s] = r
            r0 += r
            r1 += r * gv[s]
        sums[v, 0] = r0
        sums[v, 1] = r1


def irls_pass(e_cov, b0, b1, g, w, y, vv, vg, rr, sums, rows=None):
    """For each variant v and sample s, with ``eta = b0[v] + b1[v] g[v, s] + e_cov[v, s]``
    and ``mu = 1 / (1 + exp(-eta))``:

    ``vv = w mu (1 - mu)`` (Hessian weights), ``vg = vv g``, ``rr = w (mu - y)``
    (gradient residuals), and ``sums[v] = [sum vv, sum vv g, sum vv g^2, sum rr, sum rr g]``.
    ``e_cov`` (C-contiguous float64) is overwritten; ``rr`` may be ``e_cov``.  ``rows``
    (int64, optional): row ``v`` of the outputs is row ``rows[v]`` of ``g`` and ``w``.
    """
    rows = _minus_eta(e_cov, b0, b1, g, rows)
    _exp(e_cov, e_cov)
    _newton_from_exp(e_cov, g, w, y, rows, vv, vg, rr, sums)


def residual_pass(e_cov, b0, b1, g, w, y, sums, rows=None):
    """The gradient residuals only: ``e_cov <- w (mu - y)`` (in place) and
    ``sums[v] = [sum rr, sum rr g]``; ``eta`` and ``rows`` as :func:`irls_pass`."""
    rows = _minus_eta(e_cov, b0, b1, g, rows)
    _exp(e_cov, e_cov)
    _residual_from_exp(e_cov, g, w, y, rows, e_cov, sums)


def _minus_eta(e_cov, b0, b1, g, rows):
    """``e_cov <- -eta`` in place (:func:`_neg_eta`); returns the int64 ``rows`` it used."""
    rows = np.arange(e_cov.shape[0], dtype=np.int64) if rows is None else np.ascontiguousarray(rows, dtype=np.int64)
    _neg_eta(e_cov, np.ascontiguousarray(b0), np.ascontiguousarray(b1), g, rows)
    return rows


def _exp(x, out):
    """NumPy's SIMD ``exp`` (overflow to inf is meant: ``mu = 1 / (1 + inf) = 0``)."""
    with np.errstate(over="ignore"):
        np.exp(x, out=out)


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, error_model="numpy")
def a1_design(alt, founders, m, y, r, u, cc, g, w, flip, gsum, wcc):
    """One pass over a block of ALT allele counts (int8, -1 missing) per variant ``v``:

    - ``flip[v]``: A1 is REF (the ALT allele is the major one among the calls weighted by
      ``founders``, int32: e.g. 2 for a founder, 1 for a male founder on chrX, 0 otherwise);
    - ``g[v]`` A1 dosages and ``w[v]`` 0/1 weights, both 0 outside ``m`` (0/1) or at a missing call;
    - ``gsum[v] = [sum g, sum g^2, sum g y, sum g r, sum g u, sum g^2 u]``;
    - ``wcc[v] = w[v] @ cc``, as ``m @ cc`` less the rows of ``cc`` at the missing calls
      inside ``m`` (``wcc`` holds ``m @ cc`` on entry).

    Branch-free over the samples (the loops vectorize); the missing calls' rows of ``cc``
    in a second loop over the few of them.
    """
    n_variants, n_samples = alt.shape
    c = cc.shape[1]
    acc = np.empty(c)
    idx = np.empty(n_samples, dtype=np.int64)
    for v in range(n_variants):
        row = alt[v]
        fg = 0
        fc = 0
        n_miss = 0
        for s in range(n_samples):
            x = np.int32(row[s])
            called = np.int32(x >= 0)
            fc += called * founders[s]
            fg += called * founders[s] * x
            n_miss += 1 - called
        fl = fc > 0 and fg > fc
        flip[v] = fl
        a = -1.0 if fl else 1.0
        b = 2.0 if fl else 0.0
        a1 = 0.0
        g2 = 0.0
        gy = 0.0
        gr = 0.0
        gu = 0.0
        g2u = 0.0
        gv = g[v]
        wv = w[v]
        for s in range(n_samples):
            x = np.float64(row[s])
            mw = m[s] * np.float64(x >= 0.0)
            d = (b + a * x) * mw
            gv[s] = d
            wv[s] = mw
            a1 += d
            g2 += d * d
            gy += d * y[s]
            gr += d * r[s]
            gu += d * u[s]
            g2u += d * d * u[s]
        gsum[v, 0] = a1
        gsum[v, 1] = g2
        gsum[v, 2] = gy
        gsum[v, 3] = gr
        gsum[v, 4] = gu
        gsum[v, 5] = g2u
        if n_miss:
            k = 0
            for s in range(n_samples):
                if row[s] < 0:
                    idx[k] = s
                    k += 1
            acc[:] = 0.0
            for t in range(k):
                s = idx[t]
                ms = m[s]
                ccs = cc[s]
                for j in range(c):
                    acc[j] += ms * ccs[j]
            out = wcc[v]
            for j in range(c):
                out[j] -= acc[j]


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, error_model="numpy")
def _min_recip(ex, u):
    """``u = min(ex, 1 / ex)`` (``exp(-|eta|)`` from ``ex = exp(-eta)``)."""
    n_variants, n_samples = ex.shape
    for v in range(n_variants):
        e = ex[v]
        o = u[v]
        for s in range(n_samples):
            x = e[s]
            o[s] = x if x <= 1.0 else 1.0 / x


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, error_model="numpy")
def _evaluate_from_exp(neg_eta, ex, lu, g, w, y, mu, vv, vg, sums):
    """``mu = 1 / (1 + ex)``, ``vv = w mu (1 - mu)``, ``vg = vv g`` and
    ``sums[v] = [sum vv, sum vv g, sum vv g^2, log-likelihood]`` from ``-eta``, ``ex = exp(-eta)``
    and ``lu = log1p(exp(-|eta|))`` (``softplus(eta) = max(eta, 0) + lu``)."""
    n_variants, n_samples = ex.shape
    for v in range(n_variants):
        s1 = 0.0
        sg = 0.0
        sgg = 0.0
        ll = 0.0
        ne = neg_eta[v]
        exv = ex[v]
        luv = lu[v]
        gv = g[v]
        wv = w[v]
        muv = mu[v]
        vvv = vv[v]
        vgv = vg[v]
        for s in range(n_samples):
            x = gv[s]
            eta = -ne[s]
            p = 1.0 / (1.0 + exv[s])
            ws = wv[s]
            h = ws * p * (1.0 - p)
            muv[s] = p
            vvv[s] = h
            vgv[s] = h * x
            s1 += h
            sg += h * x
            sgg += h * x * x
            ll += ws * (y[s] * eta - (max(eta, 0.0) + luv[s]))
        sums[v, 0] = s1
        sums[v, 1] = sg
        sums[v, 2] = sgg
        sums[v, 3] = ll


def evaluate_pass(e_cov, b0, b1, g, w, y, ex, lu, mu, vv, vg, sums):
    """Logistic model terms (:func:`_evaluate_from_exp`) at ``eta`` as :func:`irls_pass` (``e_cov``
    is overwritten with ``-eta``); ``ex`` and ``lu`` are scratch buffers of its shape."""
    _minus_eta(e_cov, b0, b1, g, None)
    neg_eta = e_cov
    _exp(neg_eta, ex)
    _min_recip(ex, lu)
    np.log1p(lu, out=lu)
    _evaluate_from_exp(neg_eta, ex, lu, g, w, y, mu, vv, vg, sums)


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, error_model="numpy")
def firth_score_pass(ac, b, h00, h01, h11, g, w, y, mu, ww, sums):
    """Firth's modified score residuals ``ww = w ((y - mu) + (1/2 - mu) mu (1 - mu) q)`` with the
    quadratic forms ``q = x' H^-1 x = h00 + 2 h01 g + h11 g^2 + ac + 2 g b`` (``ac``, ``b``: the
    covariate terms from GEMMs), and ``sums[v] = [sum ww, sum ww g]``."""
    n_variants, n_samples = g.shape
    for v in range(n_variants):
        a = h00[v]
        c1 = h01[v]
        c2 = h11[v]
        r0 = 0.0
        r1 = 0.0
        acv = ac[v]
        bv = b[v]
        gv = g[v]
        wv = w[v]
        muv = mu[v]
        wwv = ww[v]
        for s in range(n_samples):
            x = gv[s]
            q = a + 2.0 * c1 * x + c2 * x * x + acv[s] + 2.0 * x * bv[s]
            p = muv[s]
            r = wv[s] * ((y[s] - p) + (0.5 - p) * p * (1.0 - p) * q)
            wwv[s] = r
            r0 += r
            r1 += r * x
        sums[v, 0] = r0
        sums[v, 1] = r1


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _penalized_1d(b, idx, k, eta0, gv, y):
    """Firth's penalized log-likelihood of the genotype coefficient ``b`` over the carriers
    ``idx[:k]`` (the other samples add a constant): ``sum y eta - softplus(eta) + log(I) / 2``,
    ``I = sum mu (1 - mu) g^2``."""
    ll = 0.0
    info = 0.0
    for t in range(k):
        s = idx[t]
        x = gv[s]
        eta = eta0[s] + b * x
        e = math.exp(-abs(eta))
        ll += y[s] * eta - (max(eta, 0.0) + math.log1p(e))
        info += e / ((1.0 + e) * (1.0 + e)) * x * x
    return ll + 0.5 * math.log(info)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def firth_start(eta0, g, w, y, out):
    """Per variant ``v``: ``out[v]`` = the genotype coefficient maximizing Firth's penalized
    log-likelihood with every other coefficient held at the null model (``eta0``, the null
    linear predictor per sample) and the information taken in the genotype's direction
    only.  Only the carriers (``g != 0`` where ``w != 0``) enter, so a rare variant costs
    its few carriers.  Newton's method on that 1-D objective (Fisher scoring where it is
    not concave), steps capped at 5 and halved until the objective does not fall (at most
    10 times), at most 25 steps; 0 where it fails (no carrier, a non-finite objective)."""
    n_variants, n_samples = g.shape
    idx = np.empty(n_samples, dtype=np.int64)
    for v in range(n_variants):
        gv = g[v]
        wv = w[v]
        k = 0
        for s in range(n_samples):
            if gv[s] != 0.0 and wv[s] != 0.0:
                idx[k] = s
                k += 1
        b = 0.0
        f = _penalized_1d(b, idx, k, eta0, gv, y)
        if k == 0 or not math.isfinite(f):
            out[v] = 0.0
            continue
        for _ in range(25):
            info = 0.0
            info1 = 0.0
            info2 = 0.0
            u = 0.0
            for t in range(k):
                s = idx[t]
                x = gv[s]
                mu = 1.0 / (1.0 + math.exp(-(eta0[s] + b * x)))
                vs = mu * (1.0 - mu)
                x2 = x * x
                info += vs * x2
                info1 += vs * (1.0 - 2.0 * mu) * x2 * x
                info2 += vs * (1.0 - 6.0 * mu + 6.0 * mu * mu) * x2 * x2
                u += x * (y[s] - mu)
            if not info > 0.0:
                break
            u += 0.5 * info1 / info
            curv = -info + 0.5 * (info2 / info - (info1 / info) ** 2)
            step = -u / curv if curv < 0.0 else u / info
            step = min(max(step, -5.0), 5.0)
            for _ in range(10):
                f_new = _penalized_1d(b + step, idx, k, eta0, gv, y)
                if f_new >= f:
                    break
                step *= 0.5
            else:
                break
            b += step
            f = f_new
            if abs(step) < 1e-6:
                break
        out[v] = b if math.isfinite(b) else 0.0
