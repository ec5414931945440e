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


def read_table(path, *, missing=MISSING, numeric: bool = True):
    """Read a PLINK 2 style phenotype/covariate table.

    Parameters
    ----------
    path : str or path
    missing : sequence of str
        Tokens read as missing.
    numeric : bool
        Convert value columns to float64 (an error names a non-numeric column).

    Returns
    -------
    pandas.DataFrame
        Columns ``FID`` (absent when the file has none), ``IID``, then the
        value columns in file order.
    """
    import pandas as pd

    path = Path(path)
    rows = _read_lines(path)
    if not rows:
        raise PopgenError("file is empty", path)
    first = rows[0]
    head = first[0].lstrip("#").upper() if first[0].startswith("#") or first[0].upper() in ("FID", "IID") else None
    if head == "FID":
        if len(first) < 2 or first[1].upper() != "IID":
            raise PopgenError("header starts with FID but its second column is not IID", path)
        names = ["FID", "IID"] + first[2:]
        body = rows[1:]
    elif head == "IID":
        names = ["IID"] + first[1:]
        body = rows[1:]
    elif first[0].startswith("#"):
        raise PopgenError(f"header must start with #FID IID or #IID, found {first[0]!r}", path)
    else:
        names = ["FID", "IID"] + [f"PHENO{i + 1}" for i in range(len(first) - 2)]
        body = rows
    if len(set(names)) != len(names):
        raise PopgenError("duplicate column names in header", path)
    for i, r in enumerate(body):
        if len(r) != len(names):
            line = i + (2 if body is not rows else 1)
            raise PopgenError(f"line {line} has {len(r)} columns, expected {len(names)}", path)
    df = pd.DataFrame(body, columns=names, dtype=object)
    if df["IID"].duplicated().any():
        raise PopgenError(f"duplicate sample ID {df['IID'][df['IID'].duplicated()].iloc[0]!r}", path)
    if numeric:
        for col in names[2 if "FID" in names else 1:]:
            values = df[col].where(~df[col].isin(missing), None)
            conv = pd.to_numeric(values, errors="coerce")
            bad = conv.isna() & values.notna()
            if bad.any():
                raise PopgenError(f"column {col} is not numeric (value {values[bad].iloc[0]!r})", path)
            df[col] = conv.astype(np.float64)
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
