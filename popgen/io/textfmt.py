"""Fast text formatting of result tables: numbers as PLINK 2 prints them, rows joined in numba.

PLINK 2's reports print floats with 6 significant digits (``%g`` after its
near-tie rounding, :func:`popgen.io.reports.round_plink2`).  Formatting each
value with Python's ``format`` costs ~0.5 us, which dominates writing
association results for many phenotypes (10^7 rows for 100 phenotypes x
100,000 variants).  Here the digits are produced by a numba loop into a
fixed-width byte matrix, and the columns of a table are joined into one text
block by another.

* :func:`format_g6` -- float64 values -> ``S16`` byte strings equal to
  ``reports.fmt_g`` (NaN and infinities as ``NA``), from
  :func:`popgen.io._textfmt_numba.put_g6`, which the pair reports
  (:mod:`popgen._text`) share;
* :func:`format_g9` -- float64 values -> ``%.9g`` as ``S16`` (loadings for projection);
* :func:`format_int` -- integers -> ``S20`` byte strings;
* :func:`to_bytes` -- any column (strings, integers) -> an ``S`` array;
* :func:`join_rows` -- ``S`` columns -> tab-separated lines (a ``str``);
* :func:`glm_rows` -- the rows of a PLINK 2 ``.glm`` file in one pass (no per-column text).
"""

from __future__ import annotations

import numpy as np

#: bytes of one formatted number: sign, 6 digits, point, "e-308" fits
_WIDTH = 16

def _kernels():
    """:mod:`popgen.io._textfmt_numba`, imported on first use (numba loads lazily)."""
    from popgen.io import _textfmt_numba

    return _textfmt_numba


def format_g6(x) -> np.ndarray:
    """Floats as PLINK 2 prints them (``reports.fmt_g``): an ``S16`` array, ``NA`` for NaN and infinities."""
    x = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    out = np.zeros((x.shape[0], _WIDTH), dtype=np.uint8)
    _kernels().g6(x, out)
    return out.view(f"S{_WIDTH}").reshape(-1)


def format_g9(x) -> np.ndarray:
    """Floats with 9 significant digits (``%.9g``; the last digit may differ from ``printf``'s
    exactly rounded one near a tie): an ``S16`` array, ``NA`` for NaN and infinities."""
    x = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    out = np.zeros((x.shape[0], _WIDTH), dtype=np.uint8)
    _kernels().g9(x, out)
    return out.view(f"S{_WIDTH}").reshape(-1)


def format_int(x) -> np.ndarray:
    """Integers as decimal ``S20`` byte strings."""
    x = np.ascontiguousarray(x, dtype=np.int64).reshape(-1)
    out = np.zeros((x.shape[0], 20), dtype=np.uint8)
    _kernels().ints(x, out)
    return out.view("S20").reshape(-1)


def to_bytes(column) -> np.ndarray:
    """A column (strings, integers, bytes) as a NumPy ``S`` array (ASCII; UTF-8 for other text)."""
    a = np.asarray(column)
    if a.dtype.kind == "S":
        return a
    if a.dtype.kind in "iu":
        return format_int(a)
    try:
        return a.astype("S")
    except UnicodeEncodeError:
        return np.array([str(v).encode() for v in a.tolist()])


def join_rows(columns) -> str:
    """Equal-length ``S`` columns -> tab-separated lines, each ending in a newline."""
    columns = [to_bytes(c) for c in columns]
    if not columns or not len(columns[0]):
        return ""
    mat, widths = byte_matrix(columns)
    n = mat.shape[0]
    out = np.empty(n * (int(widths.sum()) + len(columns)), dtype=np.uint8)
    end = _kernels().join(mat, widths, out)
    return out[:end].tobytes().decode("utf-8")


def byte_matrix(columns) -> tuple[np.ndarray, np.ndarray]:
    """Equal-length columns as one NUL-padded ``uint8`` matrix (n, sum widths) and the widths."""
    columns = [to_bytes(c) for c in columns]
    n = len(columns[0])
    mats = [np.ascontiguousarray(c).view(np.uint8).reshape(n, c.dtype.itemsize) for c in columns]
    return np.concatenate(mats, axis=1), np.array([m.shape[1] for m in mats], dtype=np.int64)


def row_prefixes(columns) -> tuple[np.ndarray, np.ndarray]:
    """``columns`` (``S`` or anything :func:`to_bytes` takes) joined per row, each field followed by
    a tab: ``(bytes, offsets)``, row ``i`` being ``bytes[offsets[i]:offsets[i + 1]]``."""
    mat, widths = byte_matrix(columns)
    n = mat.shape[0]
    out = np.empty(n * (int(widths.sum()) + len(widths)), dtype=np.uint8)
    offsets = np.empty(n + 1, dtype=np.int64)
    end = _kernels().prefixes(mat, widths, len(widths), out, offsets)
    return out[:end], offsets


def _p_texts(n: int, p_text: dict):
    """``(p_index, texts)`` for the numba row writers: row -> index into ``texts`` (-1: none)."""
    p_index = np.full(n, -1, dtype=np.int64)
    if p_text:
        rows = np.fromiter(p_text, dtype=np.int64, count=len(p_text))
        p_index[rows] = np.arange(len(rows))
        texts = np.array([p_text[r] for r in rows.tolist()])
    else:
        texts = np.zeros(1, dtype="S1")
    return p_index, texts.view(np.uint8).reshape(len(texts), texts.dtype.itemsize)


def ssf_rows(rows, head, tail, meta: np.ndarray, widths: np.ndarray, *, ref_field: int, alt_field: int, a1_is_ref,
             beta, se, freq, p, p_text, obs, ci_hi=(), ci_lo=()) -> bytes:
    """GWAS-SSF rows of the variants ``rows`` (indices) in one numba pass
    (:func:`popgen.io._textfmt_numba.ssf_rows`): ``head`` / ``tail`` the :func:`row_prefixes` of
    ``chromosome base_pair_location`` and of ``variant_id rsid``; ``meta``/``widths`` the
    :func:`byte_matrix` holding REF and ALT; per-row ``a1_is_ref``, ``beta``, ``se``, ``freq``,
    ``p`` (float, except rows in ``p_text``: row -> ``bytes``), ``obs``, and where not empty
    ``ci_hi``/``ci_lo`` (``ci_upper ci_lower`` last).  ASCII ``bytes``, for a file opened in
    binary mode (no decoding and re-encoding of ~80 bytes per row)."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    n = rows.shape[0]
    if not n:
        return b""
    p_index, texts = _p_texts(n, p_text)
    f64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    row = int(np.diff(head[1]).max()) + int(np.diff(tail[1]).max()) + int(widths[ref_field] + widths[alt_field]) + \
        6 * _WIDTH + texts.shape[1] + 20 + 16
    out = np.empty(n * row, dtype=np.uint8)
    end = _kernels().ssf_rows(rows, head[0], head[1], np.ascontiguousarray(meta), widths, ref_field, alt_field,
                        np.ascontiguousarray(a1_is_ref, dtype=np.bool_), f64(beta), f64(se), f64(freq), f64(p),
                        p_index, texts, tail[0], tail[1], np.ascontiguousarray(obs, dtype=np.int64), f64(ci_hi),
                        f64(ci_lo), out)
    return out[:end].tobytes()


def glm_rows(prefix, meta: np.ndarray, widths: np.ndarray, *, ref_field: int, alt_field: int, a1_is_ref, firth, obs,
             beta, se, stat, shown, p, p_text, err, err_text, ci_lo=(), ci_hi=()) -> bytes:
    """PLINK 2 ``.glm`` rows in one numba pass (:func:`popgen.io._textfmt_numba.glm_rows`):
    ``prefix`` the :func:`row_prefixes` of ``#CHROM POS ID REF ALT``; ``meta``/``widths`` from
    :func:`byte_matrix` of the same columns (A1 is one of them); ``firth`` int8 (-1: no FIRTH?
    column); ``p`` float64 P-values, except where ``p_text`` (a dict row -> ``bytes``) has the
    text; ``err_text`` ``S`` array of ERRCODE names; ``ci_lo``/``ci_hi`` (per row, or empty: no
    columns) ``--ci`` bounds after SE.  ASCII ``bytes`` (as :func:`ssf_rows`)."""
    n = meta.shape[0]
    if not n:
        return b""
    p_index, texts = _p_texts(n, p_text)
    err_text = np.ascontiguousarray(to_bytes(err_text))
    err_text = err_text.view(np.uint8).reshape(len(err_text), err_text.dtype.itemsize)
    row = int(widths.sum()) + int(max(widths[ref_field], widths[alt_field])) + 7 * _WIDTH + 20 + 8 + \
        texts.shape[1] + err_text.shape[1] + 16
    out = np.empty(n * row, dtype=np.uint8)
    f64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    end = _kernels().glm_rows(prefix[0], prefix[1], np.ascontiguousarray(meta), widths, ref_field, alt_field,
                        np.ascontiguousarray(a1_is_ref, dtype=np.bool_), np.ascontiguousarray(firth, dtype=np.int8),
                        np.ascontiguousarray(obs, dtype=np.int64), f64(beta), f64(se), f64(stat),
                        np.ascontiguousarray(shown, dtype=np.bool_), f64(p), p_index, texts,
                        np.ascontiguousarray(err, dtype=np.int64), err_text, f64(ci_lo), f64(ci_hi), out)
    return out[:end].tobytes()
