"""Phenotype/covariate tables read as PLINK 2 reads them, matched to samples by ID."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_dataset, random_alt
from popgen.errors import PopgenError
from popgen.io.pheno import match_samples, read_sample_list, read_table


@pytest.fixture
def ds(rng):
    return make_dataset(random_alt(rng, 4, 5), family_id=["f0", "f1", "f2", "f3", "f4"])


@pytest.mark.parametrize(
    "text",
    [
        "#FID IID QT BT\nf1 s1 1.5 2\nf0 s0 NA 1\nf3 s3 -9 nan\n",
        "FID\tIID\tQT\tBT\nf1\ts1\t1.5\t2\nf0\ts0\tNA\t1\nf3\ts3\t-9\tnan\n",
        "#IID QT BT\ns1 1.5 2\ns0   NA 1\ns3 -9 .\n",
        "IID QT BT\ns1 1.5 2\ns0 NA 1\ns3 -9 nan\n",
    ],
)
def test_header_forms_and_missing_tokens(tmp_path, ds, text):
    path = tmp_path / "p.txt"
    path.write_text(text)
    table = read_table(path)
    assert list(table.columns)[-2:] == ["QT", "BT"]
    aligned = match_samples(table, ds, path)
    assert aligned["IID"].tolist() == ["s0", "s1", "s2", "s3", "s4"]
    np.testing.assert_array_equal(aligned["QT"].to_numpy(), [np.nan, 1.5, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(aligned["BT"].to_numpy(), [1, 2, np.nan, np.nan, np.nan])


def test_headerless_is_fid_iid_pheno(tmp_path, ds):
    path = tmp_path / "p.txt"
    path.write_text("f2 s2 3.0\nf4 s4 4.0\n")
    table = read_table(path)
    assert list(table.columns) == ["FID", "IID", "PHENO1"]
    assert match_samples(table, ds, path)["PHENO1"].tolist()[2] == 3.0


def test_fid_mismatch_does_not_match(tmp_path, ds):
    path = tmp_path / "p.txt"
    path.write_text("#FID IID QT\nWRONG s1 1.0\nf2 s2 2.0\n")
    aligned = match_samples(read_table(path), ds, path)
    assert np.isnan(aligned["QT"][1]) and aligned["QT"][2] == 2.0


def test_no_matching_ids_is_an_error(tmp_path, ds):
    path = tmp_path / "p.txt"
    path.write_text("#IID QT\nx1 1\nx2 2\n")
    with pytest.raises(PopgenError, match="none of the 2 .* sample IDs") as e:
        match_samples(read_table(path), ds, path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize(
    "text, match",
    [
        ("#IID QT\ns1 abc\n", "column QT is not numeric"),
        ("#IID QT\ns1 1 2\n", "line 2 has 3 columns"),
        ("#IID QT BT\ns1 1 2\ns2 1 2 3\n", "line 3 has 4 columns"),
        ("#IID QT BT\ns1 1 2\ns2 1\ns3 1 2\n", "line 3 has fewer than 3 columns"),
        ("#IID QT BT\ns1 1\ns2 1 2\n", "line 2 has 2 columns"),
        ("#IID QT BT\ns1 NA 2\ns2 1\n", "line 3 has fewer than 3 columns"),
        ("#IID QT BT\ns1 1 TRUE\ns2 1 FALSE\n", "column BT is not numeric .value 'TRUE'"),
        ("#IID QT\nbad\xff 1\n", "undecodable"),
        ("#IID QT\ns1 1\ns1 2\n", "duplicate sample ID"),
        ("#SAMPLE QT\ns1 1\n", "header must start with"),
        ("", "empty"),
    ],
)
def test_bad_tables(tmp_path, text, match):
    path = tmp_path / "p.txt"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(PopgenError, match=match) as e:
        read_table(path)
    assert str(path) in str(e.value)


def test_sample_lists(tmp_path, ds):
    path = tmp_path / "keep.txt"
    path.write_text("f1 s1\nf3 s3\n")
    assert read_sample_list(path, ds).tolist() == [False, True, False, True, False]
    path.write_text("#IID\ns4\n")
    assert read_sample_list(path, ds).tolist() == [False, False, False, False, True]
    path.write_text("nobody\n")
    with pytest.raises(PopgenError, match="none of the 1 sample IDs"):
        read_sample_list(path, ds)


def test_numbers_read_as_python_reads_them(tmp_path, rng):
    """The C parser's numbers are Python's float() of each token (17 significant digits,
    exponents, signs), and tokens only Python reads (NAN, 1e400, Infinity) still read."""
    x = rng.standard_normal(2000) * 10.0 ** rng.integers(-30, 30, 2000)
    tokens = [repr(v) for v in x] + [f"{v:.17e}" for v in x[:50]] + ["+1.5", "-0", "1E5", "NAN", "1e400", "Infinity"]
    path = tmp_path / "p.txt"
    path.write_text("#IID A B\n" + "".join(f"s{i} {t} {t}\n" for i, t in enumerate(tokens)))
    table = read_table(path)
    want = np.array([float(t) if t != "NAN" else np.nan for t in tokens])
    for col in ("A", "B"):  # B, the last column, takes the text path
        got = table[col].to_numpy()
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got.view(np.int64)[~np.isnan(want)], want.view(np.int64)[~np.isnan(want)])
        assert np.isnan(got[np.isnan(want)]).all()


def test_auto_columns_and_text(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("#FID IID SEX AGE SITE\n007 s1 M 50 a\n008 s2 F NA -9\n009 s3 . 61.5 b\n")
    auto = read_table(path, numeric="auto")
    assert auto["FID"].tolist() == ["007", "008", "009"]  # IDs stay text
    assert auto["SEX"].tolist() == ["M", "F", None] and auto["SITE"].tolist() == ["a", None, "b"]
    np.testing.assert_array_equal(auto["AGE"].to_numpy(), [50.0, np.nan, 61.5])
    text = read_table(path, numeric=False)
    assert text["AGE"].tolist() == ["50", "NA", "61.5"] and text["SITE"].tolist() == ["a", "-9", "b"]
    with pytest.raises(PopgenError, match="column SEX is not numeric .value 'M'"):
        read_table(path)
