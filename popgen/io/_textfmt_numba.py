"""numba loops of :mod:`popgen.io.textfmt` (imported on first use: numba loads lazily).

Module-level functions (not closures), so that numba's on-disk cache finds them again in the
next process.
"""

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

#: "00" .. "99": two digits per division
_DIGITS2 = np.frombuffer("".join(f"{i:02d}" for i in range(100)).encode(), dtype=np.uint8).copy()
#: 10^k as integers, k = 0 .. 18
_IPOW10 = np.array([10 ** k for k in range(19)], dtype=np.int64)


@intrinsic
def _f64_bits(typingctx, x):
    """The bits of the float64 ``x`` as an int64 (LLVM bitcast)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@numba.njit(nogil=True, cache=True)
def put_digits(out, pos, value, n_digits):
    """Write the ``n_digits`` decimal digits of ``value`` (>= 0, zero padded) at ``pos``, two at a
    time (unsigned: no sign fix-ups in the divisions)."""
    v = np.uint64(value)
    k = pos + n_digits
    while k - pos >= 2:
        q = v // np.uint64(100)
        r = v - q * np.uint64(100)
        out[k - 2] = _DIGITS2[2 * r]
        out[k - 1] = _DIGITS2[2 * r + 1]
        v = q
        k -= 2
    if k > pos:
        out[pos] = 48 + np.uint8(v)
    return pos + n_digits


@numba.njit(cache=True)
def _pow10_table(zero):
    """``10.0 ** k`` for k in ``[-zero, zero]``, computed as :func:`put_g` computed them (numba's
    float ** int), so that the table's values are those bits."""
    t = np.empty(2 * zero + 1)
    for k in range(2 * zero + 1):
        t[k] = 10.0 ** (k - zero)
    return t


_POW10_ZERO = 340
_POW10 = _pow10_table(_POW10_ZERO)
_LOG10_2 = 0.30102999566398120


@numba.njit(nogil=True, cache=True, inline="always")
def _put_sign(o, pos, v):
    """A minus sign for a negative ``v`` (and -0.0): the new position and ``|v|``."""
    if v < 0 or (v == 0.0 and np.signbit(v)):
        o[pos] = 45
        return pos + 1, -v
    return pos, v


@numba.njit(nogil=True, cache=True, inline="always")
def _scaled(v, n_digits):
    """``(scaled, e, shift)`` for ``v > 0``: ``scaled = v 10^(n_digits - 1 - e)`` in
    ``[10^(n_digits - 1), 10^n_digits)`` with ``e`` the decimal exponent of ``v 10^shift``
    (``shift`` 100 in the subnormal range, where ``10^(n_digits - 1 - e)`` would overflow).
    The exponent comes from the binary one (within 1 below; corrected here) and the powers of
    ten from a table: log10 and pow were half of the time per value, frexp a tenth."""
    shift = 0
    if v < 1e-290:
        v *= 1e100
        shift = 100
    lo = _IPOW10[n_digits - 1]
    e = int(math.floor((((_f64_bits(v) >> 52) & 0x7FF) - 1023) * _LOG10_2))
    scaled = v * _POW10[n_digits - 1 - e + _POW10_ZERO]
    if scaled < lo:
        e -= 1
        scaled = v * _POW10[n_digits - 1 - e + _POW10_ZERO]
    elif scaled >= 10 * lo:
        e += 1
        scaled = v * _POW10[n_digits - 1 - e + _POW10_ZERO]
    return scaled, e, shift


@numba.njit(nogil=True, cache=True)
def put_g(o, pos, v, na, n_digits, plink_ties):
    """Write ``%.{n_digits}g`` of ``v`` at ``o[pos:]``; return the new position.

    With ``plink_ties`` (6 digits), PLINK 2's rounding: half to even within 5e-7 of a tie;
    else half up on the scaled value (the last digit may differ from C's exactly rounded
    ``printf`` near ties).

    Non-finite values as ``NA`` when ``na``, else ``nan``, ``inf``, ``-inf`` (as PLINK 2's
    pair reports print them).
    """
    if not np.isfinite(v):
        if na:
            o[pos] = 78  # N
            o[pos + 1] = 65  # A
            return pos + 2
        if np.isnan(v):
            o[pos], o[pos + 1], o[pos + 2] = 110, 97, 110  # nan
            return pos + 3
        if v < 0:
            o[pos] = 45
            pos += 1
        o[pos], o[pos + 1], o[pos + 2] = 105, 110, 102  # inf
        return pos + 3
    pos, v = _put_sign(o, pos, v)
    if v == 0.0:
        o[pos] = 48
        return pos + 1
    lo = _IPOW10[n_digits - 1]
    scaled, e, shift = _scaled(v, n_digits)
    whole = np.floor(scaled)
    m = np.uint64(whole)
    if plink_ties:  # reports.round_plink2
        up = (scaled - whole) + (0.4999995 if m % np.uint64(2) == np.uint64(0) else 0.5000005) >= 1.0
    else:
        up = scaled - whole >= 0.5
    if up:
        m += np.uint64(1)
    if m >= np.uint64(10 * lo):
        m //= np.uint64(10)
        e += 1
    e -= shift
    n_sig = n_digits  # significant digits left after stripping trailing zeros
    while n_sig > 1:
        q = m // np.uint64(10)
        if m - q * np.uint64(10) != np.uint64(0):
            break
        m = q
        n_sig -= 1
    if e < -4 or e >= n_digits:  # d.ddddde+XX
        scale = np.uint64(_IPOW10[n_sig - 1])
        lead = m // scale
        o[pos] = 48 + np.uint8(lead)
        pos += 1
        if n_sig > 1:
            o[pos] = 46
            pos += 1
            pos = put_digits(o, pos, m - lead * scale, n_sig - 1)
        o[pos] = 101
        pos += 1
        o[pos] = 45 if e < 0 else 43
        pos += 1
        ae = -e if e < 0 else e
        return put_digits(o, pos, ae, 3 if ae >= 100 else 2)
    if e >= 0:  # integer part of e + 1 digits
        if n_sig <= e + 1:
            return put_digits(o, pos, m * np.uint64(_IPOW10[e + 1 - n_sig]), e + 1)
        scale = np.uint64(_IPOW10[n_sig - e - 1])
        q = m // scale
        pos = put_digits(o, pos, q, e + 1)
        o[pos] = 46
        return put_digits(o, pos + 1, m - q * scale, n_sig - e - 1)
    o[pos] = 48  # 0.000ddd
    o[pos + 1] = 46
    pos += 2
    for _ in range(-e - 1):
        o[pos] = 48
        pos += 1
    return put_digits(o, pos, m, n_sig)


#: "000" .. "999" and their trailing zeros ("000": 3): :func:`put_g6`'s six digits as two halves
_DIGITS3 = np.frombuffer("".join(f"{i:03d}" for i in range(1000)).encode(), dtype=np.uint8).copy()
_TRAILING_ZEROS3 = np.array([3 if i == 0 else len(f"{i:03d}") - len(f"{i:03d}".rstrip("0")) for i in range(1000)],
                            dtype=np.int64)


@numba.njit(nogil=True, cache=True, inline="always")
def _digit6(hi, lo, k):
    """Digit ``k`` (0-5) of the six-digit number ``1000 hi + lo``, as ASCII."""
    return _DIGITS3[3 * hi + k] if k < 3 else _DIGITS3[3 * lo + k - 3]


@numba.njit(nogil=True, cache=True)
def put_g6(o, pos, v, na):
    """Write ``%.6g`` of PLINK 2's 6-digit rounding of ``v`` at ``o[pos:]``; return the new position.

    Non-finite values as ``NA`` when ``na``, else ``nan``, ``inf``, ``-inf`` (as PLINK 2's
    pair reports print them).  :func:`put_g` for six digits with PLINK 2's ties (byte-identical,
    tested), without its data-dependent loops: the six digits come from two table lookups,
    the trailing zeros from a table, and each layout is written whole (up to 11 bytes from
    ``pos``; bytes past the returned position are scratch): 31 instead of 46 ns a value.
    """
    if not np.isfinite(v):
        return put_g(o, pos, v, na, 6, True)
    pos, v = _put_sign(o, pos, v)
    if v == 0.0:
        o[pos] = 48
        return pos + 1
    scaled, e, shift = _scaled(v, 6)
    whole = np.floor(scaled)
    m = np.int64(whole)
    m += np.int64((scaled - whole) + (0.4999995 if (m & 1) == 0 else 0.5000005) >= 1.0)  # reports.round_plink2
    if m >= 1000000:
        m = 100000
        e += 1
    e -= shift
    hi = m // 1000
    lo = m - 1000 * hi
    n_sig = 6 - (_TRAILING_ZEROS3[lo] if lo else 3 + _TRAILING_ZEROS3[hi])
    if e < -4 or e >= 6:  # d.ddddde+XX
        o[pos] = _DIGITS3[3 * hi]
        o[pos + 1] = 46
        for k in range(1, 6):
            o[pos + 1 + k] = _digit6(hi, lo, k)
        pos += 1 if n_sig == 1 else n_sig + 1
        o[pos] = 101
        o[pos + 1] = 45 if e < 0 else 43
        ae = -e if e < 0 else e
        if ae >= 100:
            o[pos + 2] = 48 + ae // 100
            ae %= 100
            pos += 1
        o[pos + 2] = 48 + ae // 10
        o[pos + 3] = 48 + ae % 10
        return pos + 4
    if e >= 0:  # e + 1 digits, then the point and the rest where there is one
        for k in range(7):
            o[pos + k] = _digit6(hi, lo, k) if k <= e else (46 if k == e + 1 else _digit6(hi, lo, k - 1))
        return pos + (e + 1 if n_sig <= e + 1 else n_sig + 1)
    o[pos], o[pos + 1], o[pos + 2], o[pos + 3], o[pos + 4] = 48, 46, 48, 48, 48  # 0.000ddd
    pos += 1 - e
    for k in range(6):
        o[pos + k] = _digit6(hi, lo, k)
    return pos + n_sig


@numba.njit(nogil=True, cache=True)
def g9(x, out):
    """``%.9g`` of each value into the rows of ``out`` (NUL padded; non-finite as NA)."""
    for i in range(x.shape[0]):
        put_g(out[i], 0, x[i], True, 9, False)


@numba.njit(nogil=True, cache=True)
def g6(x, out):
    """:func:`put_g6` of each value into the rows of ``out`` (NUL padded; non-finite as NA)."""
    for i in range(x.shape[0]):
        row = out[i]
        for k in range(put_g6(row, 0, x[i], True), row.shape[0]):  # put_g6's scratch bytes past the end
            row[k] = 0


@numba.njit(nogil=True, cache=True)
def put_int(o, pos, v):
    """Write the decimal integer ``v`` at ``o[pos:]``; return the new position."""
    if v < 0:
        o[pos] = 45
        pos += 1
        v = -v
    n_digits = 1
    t = v
    while t >= 10:
        t //= 10
        n_digits += 1
    return put_digits(o, pos, v, n_digits)


@numba.njit(nogil=True, cache=True)
def ints(x, out):
    """Decimal integers (rows of ``out``: NUL padded)."""
    for i in range(x.shape[0]):
        put_int(out[i], 0, x[i])


@numba.njit(nogil=True, cache=True)
def join(mat, widths, out):
    """Rows of NUL-padded fields (``mat`` (n, sum widths)) -> tab-separated lines in ``out``."""
    n = mat.shape[0]
    n_fields = widths.shape[0]
    pos = 0
    for i in range(n):
        row = mat[i]
        start = 0
        for f in range(n_fields):
            w = widths[f]
            for k in range(start, start + w):
                c = row[k]
                if c == 0:
                    break
                out[pos] = c
                pos += 1
            start += w
            out[pos] = 9 if f < n_fields - 1 else 10
            pos += 1
    return pos



@numba.njit(nogil=True, cache=True)
def put_field(o, pos, src):
    """Copy the NUL-padded field ``src`` (uint8) to ``o[pos:]``; return the new position."""
    for k in range(src.shape[0]):
        c = src[k]
        if c == 0:
            break
        o[pos] = c
        pos += 1
    return pos


@numba.njit(nogil=True, cache=True)
def field_starts(widths):
    """Offsets of the NUL-padded fields of widths ``widths`` in a row (and the row's end)."""
    starts = np.zeros(widths.shape[0] + 1, dtype=np.int64)
    for f in range(widths.shape[0]):
        starts[f + 1] = starts[f] + widths[f]
    return starts


@numba.njit(nogil=True, cache=True)
def put_p(o, pos, p, text_index, texts):
    """Write a P-value: the text ``texts[text_index]`` where ``text_index >= 0`` (below
    double's range), else :func:`put_g6` of ``p``; return the new position."""
    if text_index >= 0:
        return put_field(o, pos, texts[text_index])
    return put_g6(o, pos, p, True)


@numba.njit(nogil=True, cache=True)
def prefixes(meta, widths, n_fields, out, offsets):
    """The first ``n_fields`` NUL-padded fields of each row of ``meta`` (n, sum widths), each
    followed by a tab, one row after the other in ``out``; row ``i`` is
    ``out[offsets[i]:offsets[i + 1]]``.  Returns the bytes written."""
    starts = field_starts(widths)
    pos = 0
    for i in range(meta.shape[0]):
        offsets[i] = pos
        row = meta[i]
        for f in range(n_fields):
            pos = put_field(out, pos, row[starts[f]:starts[f + 1]])
            out[pos] = 9
            pos += 1
    offsets[meta.shape[0]] = pos
    return pos


@numba.njit(nogil=True, cache=True)
def glm_rows(prefix, offsets, meta, widths, ref_field, alt_field, a1_is_ref, firth, obs, beta, se, stat, shown,
             p, p_index, p_text, err, err_text, ci_lo, ci_hi, out):
    """PLINK 2 ``.glm`` rows (one pass, no per-column arrays): ``prefix[offsets[i]:offsets[i + 1]]``
    row ``i``'s ``#CHROM POS ID REF ALT`` with their tabs (:func:`prefixes`, once per chunk for all
    phenotypes); A1 is field ``ref_field`` or ``alt_field`` of ``meta`` (n, sum widths; NUL-padded
    fields) by ``a1_is_ref``; ``firth`` (n,) int8: -1 no FIRTH? column, 0 ``N``, 1 ``Y``; ``TEST``
    is ``ADD``; ``beta``/``se``/``stat``/``p`` as :func:`put_g6` (``NA`` where not ``shown`` or not
    finite), except rows with ``p_index >= 0``, whose P is the text ``p_text[p_index]`` (below
    double's range); ``err_text[err[i]]`` the ERRCODE; ``ci_lo``/``ci_hi`` (``--ci`` bounds, as
    :func:`put_g6`, after SE) where they are not empty.  Returns the bytes written."""
    starts = field_starts(widths)
    with_ci = ci_lo.shape[0] > 0
    pos = 0
    for i in range(meta.shape[0]):
        a, b = offsets[i], offsets[i + 1]
        out[pos:pos + b - a] = prefix[a:b]
        pos += b - a
        f = ref_field if a1_is_ref[i] else alt_field
        pos = put_field(out, pos, meta[i, starts[f]:starts[f + 1]])
        out[pos] = 9
        pos += 1
        if firth[i] >= 0:
            out[pos] = 89 if firth[i] == 1 else 78  # Y / N
            out[pos + 1] = 9
            pos += 2
        out[pos], out[pos + 1], out[pos + 2], out[pos + 3] = 65, 68, 68, 9  # ADD
        pos = put_int(out, pos + 4, obs[i])
        out[pos] = 9
        pos += 1
        for v in (beta[i], se[i]):
            pos = put_g6(out, pos, v if shown[i] else np.nan, True)
            out[pos] = 9
            pos += 1
        if with_ci:
            for v in (ci_lo[i], ci_hi[i]):
                pos = put_g6(out, pos, v if shown[i] else np.nan, True)
                out[pos] = 9
                pos += 1
        pos = put_g6(out, pos, stat[i] if shown[i] else np.nan, True)
        out[pos] = 9
        pos += 1
        pos = put_p(out, pos, p[i] if shown[i] else np.nan, p_index[i], p_text)
        out[pos] = 9
        pos = put_field(out, pos + 1, err_text[err[i]])
        out[pos] = 10
        pos += 1
    return pos


@numba.njit(nogil=True, cache=True)
def ssf_rows(rows, head, head_off, meta, widths, ref_field, alt_field, a1_is_ref, beta, se, freq, p, p_index,
             p_text, tail, tail_off, obs, ci_hi, ci_lo, out):
    """GWAS-SSF rows of the variants ``rows`` in one pass: ``head[head_off[v]:head_off[v + 1]]``
    variant ``v``'s ``chromosome base_pair_location`` with tabs, then effect (A1) and other
    allele (fields ``ref_field`` / ``alt_field`` of ``meta`` by ``a1_is_ref``), ``beta`` /
    ``se`` / ``freq`` / ``p`` as :func:`put_g6` (``p_text[p_index[i]]`` where ``p_index[i] >= 0``),
    ``tail[tail_off[v]:tail_off[v + 1]]`` (``variant_id rsid`` with tabs), ``obs`` and
    ``EA`` / ``OA`` (the reference allele's role), then ``ci_hi``/``ci_lo`` where not empty.
    Per-row arrays are indexed by row ``i``, per-variant ones by ``v = rows[i]``.  Returns the
    bytes written."""
    starts = field_starts(widths)
    with_ci = ci_hi.shape[0] > 0
    pos = 0
    for i in range(rows.shape[0]):
        v = rows[i]
        a, b = head_off[v], head_off[v + 1]
        out[pos:pos + b - a] = head[a:b]
        pos += b - a
        ea, oa = (ref_field, alt_field) if a1_is_ref[i] else (alt_field, ref_field)
        pos = put_field(out, pos, meta[v, starts[ea]:starts[ea + 1]])
        out[pos] = 9
        pos = put_field(out, pos + 1, meta[v, starts[oa]:starts[oa + 1]])
        out[pos] = 9
        pos += 1
        for x in (beta[i], se[i], freq[i]):
            pos = put_g6(out, pos, x, True)
            out[pos] = 9
            pos += 1
        pos = put_p(out, pos, p[i], p_index[i], p_text)
        out[pos] = 9
        pos += 1
        a, b = tail_off[v], tail_off[v + 1]
        out[pos:pos + b - a] = tail[a:b]
        pos += b - a
        pos = put_int(out, pos, obs[i])
        out[pos] = 9
        out[pos + 1] = 69 if a1_is_ref[i] else 79  # EA / OA
        out[pos + 2] = 65
        pos += 3
        if with_ci:
            for x in (ci_hi[i], ci_lo[i]):
                out[pos] = 9
                pos = put_g6(out, pos + 1, x, True)
        out[pos] = 10
        pos += 1
    return pos
