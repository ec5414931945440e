"""popgen.io.textfmt: PLINK 2 number formatting and row joining against the Python formatting."""

from __future__ import annotations

import numpy as np
import pytest

from popgen.io.reports import fmt_9g, fmt_g
from popgen.io.textfmt import format_g6, format_g9, format_int, join_rows, to_bytes


def test_format_g6_equals_fmt_g(rng):
    x = np.concatenate([
        rng.standard_normal(20000) * 10.0 ** rng.integers(-12, 12, 20000),
        np.round(rng.random(5000), 7), np.round(rng.random(5000), 7) + 5e-7,  # near-ties of the 6th digit
        [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-5, 1e-4, 9.999995e-5, 999999.5, 1e6, 123456.5, 0.028906250000000022,
         1e308, 0.5, 1.0, 10.0, 100000.0, 999999.0, 9999995.0, 123456789.0, 9.9999996, 0.99999949, -2.5e-7]])
    with np.errstate(all="ignore"):
        expected = fmt_g(x).astype(str)
    np.testing.assert_array_equal(format_g6(x).astype(str), expected)
    sub = np.array([1.5e-310, -2.25e-315, 4.9e-324, 1.23456789e-300])  # subnormals and near them
    assert format_g6(sub).tolist() == [b"1.5e-310", b"-2.25e-315", b"4.94066e-324", b"1.23457e-300"]
    assert fmt_g(sub).tolist() == [s.decode() for s in format_g6(sub)]


def test_format_g9_equals_printf_but_near_ties(rng):
    x = np.concatenate([rng.standard_normal(20000) * 10.0 ** rng.integers(-12, 12, 20000),
                        [0.0, -0.0, 1e-5, 1e-4, 1.0, 10.0, 123456789.0, 1234567891.0, 0.5, 1e308, 1.5e-310]])
    got, expected = format_g9(x).astype(str), fmt_9g(x).astype(str)
    same = got == expected
    assert same.mean() > 0.999  # only the last digit of near-ties may differ (scaled, not exact, rounding)
    np.testing.assert_allclose(got[~same].astype(float), x[~same], rtol=6e-9)
    assert all(len(a) == len(b) for a, b in zip(got[~same], expected[~same]))
    assert format_g9([np.nan, np.inf]).tolist() == [b"NA", b"NA"]


def test_format_int_and_join_rows():
    np.testing.assert_array_equal(format_int([0, 7, -12, 1234567890123]), [b"0", b"7", b"-12", b"1234567890123"])
    text = join_rows([np.array(["1", "22"], dtype=object), np.array([5, 123]), format_g6([1.5, np.nan]),
                      np.array(["r\u00e9f", "x"], dtype=object)])
    assert text == "1\t5\t1.5\tr\u00e9f\n22\t123\tNA\tx\n"
    assert join_rows([np.array([], dtype=object)]) == ""


def _glm_lines_reference(meta, res, kind, firth):
    """The .glm rows as the column-by-column formatter wrote them (join_rows of per-column text)."""
    from popgen.association import _ERRCODE_BYTES, E_OK, E_UNFINISHED, _lnp_bytes, _meta_bytes

    shown = (res["ERRCODE"] == E_OK) | (res["ERRCODE"] == E_UNFINISHED)
    n = len(shown)
    beta = np.exp(res["BETA"]) if kind == "logistic" else res["BETA"]
    mb = _meta_bytes(dict(meta))
    cols = [mb["#CHROM"], mb["POS"], mb["ID"], mb["REF"], mb["ALT"], np.where(res["A1_IS_REF"], mb["REF"], mb["ALT"])]
    if kind == "logistic" and firth == "fallback":
        cols.append(np.where(res["FIRTH"], b"Y", b"N"))
    cols += [np.full(n, b"ADD"), format_int(res["OBS_CT"]), format_g6(np.where(shown, beta, np.nan)),
             format_g6(np.where(shown, res["SE"], np.nan)), format_g6(np.where(shown, res["STAT"], np.nan)),
             _lnp_bytes(np.where(shown, res["LNP"], np.nan)), _ERRCODE_BYTES[res["ERRCODE"]]]
    return join_rows(cols)


def _ssf_lines_reference(meta, res, kind):
    """The GWAS-SSF rows as the column-by-column formatter wrote them."""
    from popgen.association import E_OK, E_UNFINISHED, _lnp_bytes, _meta_bytes, _ssf_chrom

    keep = ((res["ERRCODE"] == E_OK) | (res["ERRCODE"] == E_UNFINISHED)) & np.isfinite(res["SE"])
    mb = _meta_bytes(dict(meta))
    chrom = np.array([_ssf_chrom(c) for c in meta["#CHROM"]], dtype=object)
    rsid = np.array([i if (str(i).startswith("rs") and str(i)[2:].isdigit()) else "#NA" for i in meta["ID"]],
                    dtype=object)
    vid = np.array([f"{c}_{p}_{r}_{a}" for c, p, r, a in zip(chrom, meta["POS"].tolist(), meta["REF"], meta["ALT"])],
                   dtype=object)
    idx = np.flatnonzero(keep)
    a1_ref = res["A1_IS_REF"][idx]
    ref, alt = mb["REF"][idx], mb["ALT"][idx]
    beta = np.exp(res["BETA"][idx]) if kind == "logistic" else res["BETA"][idx]
    return join_rows([to_bytes(chrom)[idx], mb["POS"][idx], np.where(a1_ref, ref, alt), np.where(a1_ref, alt, ref),
                      format_g6(beta), format_g6(res["SE"][idx]), format_g6(res["A1_FREQ"][idx]),
                      _lnp_bytes(res["LNP"][idx]), to_bytes(vid)[idx], to_bytes(rsid)[idx],
                      format_int(res["OBS_CT"][idx]), np.where(a1_ref, b"EA", b"OA")])


def test_glm_rows_equal_column_by_column_formatting(rng):
    from popgen.association import ERRCODES, _glm_lines, _ssf_lines

    n = 500
    meta = {"#CHROM": np.array(["1", "X", "22"] * 166 + ["MT", "2"], dtype=object),
            "ID": np.array([f"rs{i}" if i % 7 else f"1:{i}:A:G" for i in range(n)], dtype=object),
            "REF": np.array(["A", "TTA", "C", "G"] * 125, dtype=object),
            "ALT": np.array(["G", "T", "CAAAAAAAAA", "A"] * 125, dtype=object), "POS": rng.integers(1, 10**9, n)}
    lnp = -rng.exponential(3, n)
    lnp[:5] = [-800.0, -1e4, 0.0, np.nan, -745.2]  # beyond float64's range, p = 1, NaN
    beta = rng.standard_normal(n) * 10.0 ** rng.integers(-6, 3, n)
    beta[5:8] = [np.nan, np.inf, 0.0]
    res = {"BETA": beta, "SE": np.abs(rng.standard_normal(n)), "LNP": lnp, "OBS_CT": rng.integers(0, 10**6, n),
           "A1_IS_REF": rng.random(n) < 0.5, "ERRCODE": rng.integers(0, len(ERRCODES), n),
           "FIRTH": rng.random(n) < 0.3}
    res["STAT"] = res["BETA"] / res["SE"]
    res["P"] = np.exp(lnp)  # as ChunkResult holds it
    for kind, firth in (("linear", None), ("logistic", "fallback"), ("logistic", "never")):
        got = _glm_lines(dict(meta), res, kind, firth).decode()
        assert got == _glm_lines_reference(meta, res, kind, firth)
        assert got.count("\n") == n
    res["A1_FREQ"] = rng.random(n)
    res["A1_FREQ"][9] = np.nan
    res["SE"][10] = np.inf  # not finite: no GWAS-SSF row
    meta["#CHROM"][:4] = ["chrX", "MT", "chr7", "XY"]  # GWAS-SSF codes
    for kind in ("linear", "logistic"):
        got = _ssf_lines(dict(meta), res, kind).decode()
        assert got == _ssf_lines_reference(meta, res, kind)
        assert 0 < got.count("\n") < n


def test_atomic_write_replaces_and_keeps_old_on_error(tmp_path):
    """An output is renamed into place whole: an older file is replaced (removed just before the
    rename), and an error while writing leaves the older file as it was and no temporary file."""
    from popgen.io.files import atomic_write

    path = tmp_path / "o.glm"
    path.write_text("old\n")
    with atomic_write(path, "wb") as f:
        f.write(b"new\n")
    assert path.read_text() == "new\n"
    with pytest.raises(RuntimeError):
        with atomic_write(path) as f:
            f.write("partial")
            raise RuntimeError("interrupted")
    assert path.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.glm"]


def test_put_g6_equals_the_general_formatter(rng):
    """put_g6 (table digits, layouts written whole) is put_g(..., 6, plink_ties) byte for byte:
    every exponent, ties, carries to the next power of ten, subnormals, signs, non-finite."""
    import numba

    from popgen.io import _textfmt_numba as K

    @numba.njit
    def both(x, a, b, la, lb):
        for i in range(x.shape[0]):
            la[i] = K.put_g(a[i], 0, x[i], True, 6, True)
            lb[i] = K.put_g6(b[i], 0, x[i], True)

    x = np.concatenate([
        rng.normal(size=100000) * 10.0 ** rng.integers(-320, 300, 100000), rng.uniform(size=50000),
        np.round(rng.normal(size=50000), 3), np.round(rng.uniform(size=20000) * 1e6), np.arange(1, 40000) * 0.5e-6,
        [0.0, -0.0, 9.999995, 9.9999949, 999999.5, 1e-5, 1e-4 * 0.9999999, 123456.5, 5e-324, 2.2e-308, -1.5,
         np.inf, -np.inf, np.nan, 1e6, 999999.4999, 1e15, 9.5e-5, 99999.95, 1e100, 1e-100, 1.5e-200]])
    a, b = np.zeros((len(x), 24), np.uint8), np.zeros((len(x), 24), np.uint8)
    la, lb = np.empty(len(x), np.int64), np.empty(len(x), np.int64)
    both(x, a, b, la, lb)
    np.testing.assert_array_equal(la, lb)
    diff = [i for i in range(len(x)) if a[i, :la[i]].tobytes() != b[i, :lb[i]].tobytes()]
    assert not diff, [(x[i], a[i, :la[i]].tobytes(), b[i, :lb[i]].tobytes()) for i in diff[:5]]
