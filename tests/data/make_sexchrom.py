"""Writes tests/data/sexchrom/sexchrom.{bed,bim,fam,pheno,covar}: a small cohort with chrX,
chrY, the pseudo-autosomal XY and MT between two autosomes, for PLINK 2's --glm models of
the sex chromosomes (see make_reference.sh, section 6).

Males' haploid calls are coded 0/2 as a .bed holds them, with a few heterozygous errors; 12
samples have unknown sex; females' chrY calls are mostly missing.  Also ``ldsex``, the same
contigs with LD blocks (:func:`main_ld`).  Run from the repository root:
``.venv/bin/python tests/data/make_sexchrom.py``.
"""

import numpy as np
import pandas as pd

from popgen.io.memory import dataset_from_alt_count
from popgen.io.plink import write_plink

OUT = "tests/data/sexchrom/sexchrom"


def main(n=800, seed=11):
    rng = np.random.default_rng(seed)
    sex = rng.choice([1, 2], n)
    sex[:12] = 0
    male = sex == 1
    rows, contig, pos = [], [], []
    for c, m in (("1", 120), ("X", 120), ("XY", 20), ("Y", 30), ("MT", 20), ("2", 40)):
        for j in range(m):
            f = rng.uniform(0.05, 0.5) if j % 8 else rng.uniform(0.003, 0.02)  # every 8th rare: Firth
            dip = rng.binomial(2, f, n)
            hap = 2 * rng.binomial(1, f, n)
            g = {"X": np.where(male, hap, dip), "Y": np.where(male, hap, np.where(rng.uniform(size=n) < 0.9, -1, dip)),
                 "MT": hap}.get(c, dip)
            g = np.where(rng.uniform(size=n) < 0.003, 1, g)   # heterozygous haploid errors
            g = np.where(rng.uniform(size=n) < 0.01, -1, g)   # missing calls
            rows.append(g)
            contig.append(c)
            pos.append(10_000 + 1000 * j)
    g = np.array(rows, dtype=np.int8)
    ids = [f"i{k}" for k in range(n)]
    ds = dataset_from_alt_count(g, contig=contig, position=pos, ref=["A"] * len(pos), alt=["C"] * len(pos),
                                variant_id=[f"{c}:{p}" for c, p in zip(contig, pos)], sample_id=ids,
                                family_id=ids, sex=sex, chunks=(64, n))
    write_plink(ds, OUT)
    age = rng.normal(50, 10, n).round(1)
    x = np.clip(g[125], 0, 2) / np.where(male, 2, 1)  # a chrX effect
    qt = 0.02 * age + 0.5 * male + 0.4 * x + rng.normal(size=n)
    bt = 1 + (rng.uniform(size=n) < 1 / (1 + np.exp(1.0 - 0.4 * male - 0.5 * x)))
    pd.DataFrame({"#FID": ids, "IID": ids, "QT": qt.round(5), "BT": bt}).to_csv(f"{OUT}.pheno", sep="\t", index=False)
    pd.DataFrame({"#FID": ids, "IID": ids, "AGE": age, "SEX": np.where(sex == 0, np.nan, sex)}).to_csv(
        f"{OUT}.covar", sep="\t", index=False, na_rep="NA")


def main_ld(n=600, seed=12, out="tests/data/sexchrom/ldsex"):
    """``ldsex``: the same contigs with LD blocks (variants copying a block's haplotype with
    noise), for --indep-pairwise; every sample a founder (PLINK v2.00a3.5 takes the wrong
    samples on chrX/chrY when there are non-founders)."""
    rng = np.random.default_rng(seed)
    sex = rng.choice([1, 2], n)
    sex[:10] = 0
    male = sex == 1
    rows, contig, pos = [], [], []
    for c, m in (("1", 100), ("X", 150), ("XY", 30), ("Y", 40), ("MT", 40)):
        hap = np.zeros((m, 2 * n), dtype=np.int8)
        for b in range(0, m, 10):
            base = rng.binomial(1, rng.uniform(0.1, 0.5), 2 * n)
            for j in range(b, min(m, b + 10)):
                hap[j] = np.where(rng.uniform(size=2 * n) < rng.uniform(0.02, 0.3), 1 - base, base)
        h1, h2 = hap[:, 0::2], hap[:, 1::2]
        for j in range(m):
            g = {"X": np.where(male, 2 * h1[j], h1[j] + h2[j]),
                 "Y": np.where(male, 2 * h1[j], np.where(rng.uniform(size=n) < 0.9, -1, h1[j] + h2[j])),
                 "MT": 2 * h1[j]}.get(c, h1[j] + h2[j])
            g = np.where(rng.uniform(size=n) < 0.003, 1, g)   # heterozygous haploid errors
            g = np.where(rng.uniform(size=n) < 0.01, -1, g)
            rows.append(g)
            contig.append(c)
            pos.append(5_000 + 1000 * j)
    ids = [f"j{k}" for k in range(n)]
    ds = dataset_from_alt_count(np.array(rows, dtype=np.int8), contig=contig, position=pos, ref=["A"] * len(pos),
                                alt=["G"] * len(pos), variant_id=[f"{c}:{p}" for c, p in zip(contig, pos)],
                                sample_id=ids, family_id=ids, sex=sex, chunks=(64, n))
    write_plink(ds, out)


if __name__ == "__main__":
    main()
    main_ld()
