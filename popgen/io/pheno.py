"""Phenotype, covariate and sample-list tables, read the way PLINK 2 reads them.

Header: a first line starting with ``#FID IID``, ``FID IID``, ``#IID`` or
``IID`` names the columns; without one, PLINK 2's headerless layout is
assumed (``FID IID`` then ``PHENO1``, ``PHENO2``, ...).  Columns are separated
by any whitespace (spaces or tabs).  ``NA``, ``-9``, ``nan`` (any case) and
``.`` are missing.  Rows are matched to cohort samples by IID (and FID, when
both the file and the cohort have one).
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import numpy as np

from popgen.errors import PopgenError

log = logging.getLogger(__name__)

MISSING = ("NA", "na", "NaN", "nan", "-9", ".", "")


def _read_lines(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise PopgenError("file not found", path)
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise PopgenError("not a text table (undecodable bytes)", path) from None
    rows = [line.split() for line in text.splitlines()]
    return [r for r in rows if r]


def parse_numbers(tokens, missing=MISSING):
    """Float values of string tokens as Python's ``float`` reads them (missing tokens and
    non-strings -- None, the NaN of samples absent from a table -- NaN); ``(None, token)`` at
    the first token that is not a number.  The slow path of :func:`read_table` (columns the
    C parser did not read as numbers) and of a few tokens elsewhere."""
    missing = missing if isinstance(missing, (set, frozenset)) else set(missing)
    try:
        return np.array([math.nan if t.__class__ is not str or t in missing else float(t) for t in tokens],
                        dtype=np.float64), None
    except ValueError:
        pass
    for t in tokens:
        if t.__class__ is str and t not in missing:
            try:
                float(t)
            except ValueError:
                return None, t
    raise AssertionError("unreachable: a token failed to parse once")  # pragma: no cover


def _header(path: Path) -> tuple[list[str], int]:
    """Column names of a table and the lines before its body (0 when headerless)."""
    try:
        with open(path, encoding="utf-8") as f:
            for n_lines, line in enumerate(f, 1):
                first = line.split()
                if first:
                    break
            else:
                raise PopgenError("file is empty", path)
    except UnicodeDecodeError:
        raise PopgenError("not a text table (undecodable bytes)", path) from None
    head = first[0].lstrip("#").upper() if first[0].startswith("#") or first[0].upper() in ("FID", "IID") else None
    if head == "FID":
        if len(first) < 2 or first[1].upper() != "IID":
            raise PopgenError("header starts with FID but its second column is not IID", path)
        names = ["FID", "IID"] + first[2:]
    elif head == "IID":
        names = ["IID"] + first[1:]
    elif first[0].startswith("#"):
        raise PopgenError(f"header must start with #FID IID or #IID, found {first[0]!r}", path)
    else:
        return ["FID", "IID"] + [f"PHENO{i + 1}" for i in range(len(first) - 2)], n_lines - 1
    if len(set(names)) != len(names):
        raise PopgenError("duplicate column names in header", path)
    return names, n_lines


def column_names(path) -> list[str]:
    """The columns of a phenotype/covariate table (``FID``, ``IID``, then its value columns),
    from its header alone."""
    path = Path(path)
    if not path.is_file():
        raise PopgenError("file not found", path)
    return _header(path)[0]


def read_table(path, *, missing=MISSING, numeric=True):
    """Read a PLINK 2 style phenotype/covariate table.

    Parameters
    ----------
    path : str or path
    missing : sequence of str
        Tokens read as missing.
    numeric : bool or "auto"
        ``True``: value columns as float64 (an error names a non-numeric column);
        ``"auto"``: float64 where every token of a column is a number or missing, text
        elsewhere (missing tokens as None, e.g. categorical covariates); ``False``: every
        value column as the text written.

    Returns
    -------
    pandas.DataFrame
        Columns ``FID`` (absent when the file has none), ``IID``, then the
        value columns in file order.

    The body is read by pandas' C parser (numbers parsed as Python's ``float`` parses them:
    ``float_precision="round_trip"``): 8 bytes per value, not a string object per token (a
    table of 500,000 samples x 100 phenotypes holds 0.4 GB, not several).
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise PopgenError("file not found", path)
    names, skip = _header(path)
    ids = names[:names.index("IID") + 1]
    values = names[len(ids):]
    # the last column is read as text: a short row leaves it empty ('' is no token of a
    # whitespace-separated file), which a missing-token rule would turn into NaN silently
    text = values if numeric is False else values[-1:]
    at = {c: i for i, c in enumerate(names)}  # columns by position: the body's first row, not the
    try:                                       # header, sets the width pandas expects
        df = pd.read_csv(path, sep=r"\s+", header=None, skiprows=skip, engine="c",
                         dtype={at[c]: str for c in ids + text}, keep_default_na=False,
                         na_values={at[c]: list(missing) for c in values if c not in text},
                         float_precision="round_trip", comment=None, encoding="utf-8")
    except pd.errors.EmptyDataError:
        df = pd.DataFrame({i: pd.Series(dtype=object) for i in range(len(names))})
    except UnicodeDecodeError:
        raise PopgenError("not a text table (undecodable bytes)", path) from None
    except pd.errors.ParserError as e:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        if m and int(m[1]) != len(names):  # the body's first row set the width
            raise PopgenError(f"line {skip + 1} has {m[1]} columns, expected {len(names)}", path) from None
        if m:
            raise PopgenError(f"line {m[2]} has {m[3]} columns, expected {len(names)}", path) from None
        raise PopgenError(f"cannot parse: {str(e).splitlines()[0]}", path) from None
    if df.shape[1] != len(names):
        raise PopgenError(f"line {skip + 1} has {df.shape[1]} columns, expected {len(names)}", path)
    df.columns = names
    last = names[-1]
    short = (df[last] == "").to_numpy() | df[last].isna().to_numpy()
    if short.any():
        raise PopgenError(f"line {skip + int(np.argmax(short)) + 1} has fewer than {len(names)} columns", path)
    if df["IID"].duplicated().any():
        raise PopgenError(f"duplicate sample ID {df['IID'][df['IID'].duplicated()].iloc[0]!r}", path)
    if numeric is False:
        return df
    for col in values:
        if df[col].dtype.kind in "iuf":
            df[col] = df[col].astype(np.float64)
            continue
        if df[col].dtype.kind == "b":  # TRUE/FALSE: read again as the text written
            df[col] = pd.read_csv(path, sep=r"\s+", header=None, skiprows=skip, usecols=[at[col]],
                                  dtype=str, keep_default_na=False, engine="c")[at[col]]
        tokens = df[col].tolist()
        x, bad = parse_numbers(tokens, missing)
        if x is not None:
            df[col] = x
        elif numeric is True:
            raise PopgenError(f"column {col} is not numeric (value {bad!r})", path)
        else:
            df[col] = pd.Series([None if t.__class__ is not str or t in missing else t for t in tokens],
                                dtype=object)
    return df


def match_samples(table, ds, path, *, what: str = "table"):
    """Align a table's rows to the cohort's samples.

    Returns the table re-indexed to ``ds.sample_id`` order (NaN rows for
    cohort samples the table lacks).  It is an error when no row of the table
    matches a cohort sample; rows for samples not in the cohort are dropped
    with a warning.
    """
    cohort, cohort_key, key = _sample_keys(table, ds, path, what)
    aligned = table.assign(_key=key.values).set_index("_key").reindex(cohort_key)
    aligned.index.name = None
    aligned["IID"] = cohort
    return aligned.reset_index(drop=True)


def sample_rows(table, ds, path, *, what: str = "table"):
    """The row of ``table`` holding each cohort sample (int64, -1 where the table lacks it), with
    :func:`match_samples`' checks: for reading columns without re-indexing the whole table."""
    import pandas as pd

    _, cohort_key, key = _sample_keys(table, ds, path, what)
    return pd.Index(key).get_indexer(cohort_key).astype(np.int64)


def _sample_keys(table, ds, path, what):
    """The cohort's sample IDs, its matching keys (``FID<tab>IID`` when both sides have family
    IDs) and the table's; errors when no row matches, warns about rows outside the cohort."""
    cohort = np.asarray(ds["sample_id"].values).astype(str)
    key = table["IID"].astype(str)
    if "FID" in table and "sample_family_id" in ds:
        fids = np.asarray(ds["sample_family_id"].values).astype(str)
        cohort_key = np.char.add(np.char.add(fids, "\t"), cohort)
        key = table["FID"].astype(str) + "\t" + key
    else:
        cohort_key = cohort
    in_cohort = key.isin(set(cohort_key.tolist()))
    if not in_cohort.any():
        raise PopgenError(
            f"none of the {len(table)} {what} sample IDs (e.g. {table['IID'].iloc[0]!r}) are in the cohort", path
        )
    if not in_cohort.all():
        log.warning("%s: %d of %d sample IDs are not in the cohort and are ignored", path, (~in_cohort).sum(), len(table))
    return cohort, cohort_key, key


def read_sample_list(path, ds):
    """Samples named in a PLINK ``--keep``/``--remove`` file, as a bool mask over ``ds``.

    Lines hold ``FID IID`` or ``IID`` (a ``#FID``/``#IID``/``FID``/``IID``
    header is allowed).  It is an error when none of the IDs are in the cohort.
    """
    path = Path(path)
    rows = _read_lines(path)
    if rows and (rows[0][0].startswith("#") or rows[0][0].upper() in ("FID", "IID")):
        header = [c.lstrip("#").upper() for c in rows[0]]
        rows = rows[1:]
        iid_col = header.index("IID") if "IID" in header else 0
    else:
        iid_col = 1 if rows and len(rows[0]) >= 2 else 0
    ids = {r[iid_col] for r in rows if len(r) > iid_col}
    cohort = np.asarray(ds["sample_id"].values).astype(str)
    mask = np.isin(cohort, list(ids))
    if ids and not mask.any():
        raise PopgenError(f"none of the {len(ids)} sample IDs are in the cohort", path)
    return mask


def read_id_list(path) -> set[str]:
    """IDs listed one per line (first column; a ``#`` header line is skipped), e.g. ``--extract`` files."""
    path = Path(path)
    rows = _read_lines(path)
    return {r[0] for r in rows if not r[0].startswith("#")}
