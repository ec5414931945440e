"""Simulated cohorts with known truth: structure, relatives, causal variants.

:func:`simulate_cohort` builds a realistic cohort for tests, the quickstart
example and benchmarks, and records everything a method should recover in
``SimulatedCohort.truth`` (written by :func:`write_truth`).

The model, in the order it is simulated:

1. **Ancestry** (msprime, Hudson coalescent with recombination).  ``k``
   populations of size ``Ne = 10,000`` split from a common ancestor along a
   ladder tree ``(((POP1, POP2), POP3), POP4) ...``: POP1/POP2 split 300
   generations ago, POP3 joins 1,500 generations ago, each further population
   1,000 generations earlier than the last (Fst about 0.015 between POP1 and
   POP2, about 0.07 between POP3 and the others; the top two PCs separate the
   three populations at 600 samples x 5,000 variants).  Population sizes in
   the sample are unequal (weights ``1 / (1 + i/4)``).
2. **Genome and sites.**  The contigs share a pseudo-genome of
   :data:`GENOME_LENGTH` (3 Gb, at most 2 Gb per contig so that positions fit
   a .bim file) at 1e-8 recombination per bp per generation: 1 cM per Mb, 30
   Morgans in all, like a human genome.  Simulating 3 Gb with msprime would
   take hours, so each contig is built, like a genotyping array, from
   independently simulated blocks of :data:`BLOCK_LENGTH` (100 kb, longer for
   big quotas), one per evenly spaced slot along the contig, about
   :data:`BLOCK_SNPS` SNPs per block (fewer, bigger blocks for large cohorts):
   LD is realistic within a block and absent between blocks.  Each block has
   recombination 1e-8 and JC69 mutations at 1e-8, thinned at random to about
   four times the block's quota (a random subset of sites is the same as a
   lower rate).  Sites with one mutation (biallelic SNPs, REF ancestral, ALT
   derived) are ascertained like an array: :data:`COMMON_FRACTION` (85 %)
   with MAF >= 0.05 in the simulated founders, the rest rarer; exactly
   ``n_variants`` in all, split evenly across contigs, positions sorted.  A
   genome built from one long msprime contig per chromosome at the density of
   ``n_variants`` (a few Mb for 5,000 SNPs) has so few independent genealogies
   that KING kinship of unrelated pairs scatters with sd ~0.1; with the blocks
   it is ~0.025.
3. **Relatives** (gene dropping).  About ``relative_fraction * n_samples`` of
   the sampled individuals belong to small pedigrees whose founders are
   msprime individuals of one population: one duplicate (MZ twin) pair, then
   repeated trios (two parent-offspring pairs), full-sibling pairs,
   half-sibling pairs, grandparent-grandchild pairs and avuncular pairs.
   Founders that are only parents of sampled relatives are simulated but not
   sampled.  Each child receives one recombinant haplotype from each parent,
   with crossovers a Poisson process at 1e-8 per bp along each contig (the map
   of ``cm_position``), so relatives' realised kinship scatters around its
   expectation as much as real relatives' does (full siblings: sd about 0.02);
   ``truth["relatives"]`` has both.
4. **Phenotypes.**  ``n_causal`` variants with minor allele frequency >= 0.05
   get standardised normal effects, scaled so that the genetic value has
   variance ``h2`` and the noise ``1 - h2``; SEX, AGE and a population mean
   shift are added on top (see ``truth["phenotype_model"]``).  BT uses
   independent effects on the same variants and a liability threshold at the
   ``1 - prevalence`` quantile.  Genetic values use the true genotypes.  About
   2 % of QT and of BT are set to NaN.
5. **Missing calls** at rate ``missing_rate``, completely at random, last.

References
----------
Baumdicker F. et al. (2022) Efficient ancestry and mutation simulation with
msprime 1.0. *Genetics* 220(3):iyab229.
Manichaikul A. et al. (2010) Robust relationship inference in genome-wide
association studies. *Bioinformatics* 26(22):2867-2873.
Falconer D. S. (1965) The inheritance of liability to certain diseases,
estimated from the incidence among relatives. *Ann. Hum. Genet.* 29:51-76.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import TYPE_CHECKING

import numpy as np

from popgen.errors import PopgenError

if TYPE_CHECKING:  # pandas is imported lazily, when a cohort is simulated
    import pandas

#: effective population size of every population and ancestor
NE = 10_000
#: per bp per generation, for msprime and for ``cm_position``
RECOMBINATION_RATE = 1e-8
#: per bp per generation
MUTATION_RATE = 1e-8
#: physical length of the pseudo-genome, shared equally among the contigs (bp)
GENOME_LENGTH = 3_000_000_000
#: longest contig, so that positions fit PLINK's 32-bit .bim column (bp)
MAX_CONTIG_LENGTH = 2_000_000_000
#: length of one independently simulated msprime block (bp)
BLOCK_LENGTH = 100_000
#: target number of SNPs per block; at most MAX_BLOCKS blocks, and at most
#: BLOCK_HAPLOTYPES / (2 * founders) (an msprime call costs ~7 us per haplotype)
BLOCK_SNPS = 20
MAX_BLOCKS = 1000
BLOCK_HAPLOTYPES = 4_000_000
#: array-like ascertainment: this fraction of the SNPs has MAF >= COMMON_MAF
COMMON_FRACTION = 0.85
COMMON_MAF = 0.05
#: fraction of QT and of BT values set to NaN
PHENO_MISSING = 0.02
#: minimum minor allele frequency of a causal variant (relaxed if too few)
CAUSAL_MIN_MAF = 0.05

# Fixed effects on QT and on the BT liability (in phenotype sd units)
_SEX_EFFECT = 0.2  # female vs male
_AGE_EFFECT = 0.01  # per year, centred at 50
_POP_SHIFT_STEP = 0.3  # POP(i+1) mean - POP(i) mean


@dataclasses.dataclass
class SimulatedCohort:
    """A simulated cohort: genotypes, variant and sample tables, phenotypes and truth.

    Attributes
    ----------
    alt_count : ndarray, int8, shape (n_variants, n_samples)
        ALT allele count per call (0, 1 or 2); -1 is a missing call.
    contig : ndarray, str, shape (n_variants,)
        Contig name ("1", "2", ...); variants are sorted by contig then position.
    position : ndarray, int64, shape (n_variants,)
        1-based base-pair position, strictly increasing within a contig.
    variant_id : ndarray, str, shape (n_variants,)
        Unique identifier ``"<contig>:<position>"``.
    ref, alt : ndarray, str, shape (n_variants,)
        Single-base REF (ancestral) and ALT (derived) alleles, ``ref != alt``.
    cm_position : ndarray, float64, shape (n_variants,)
        Genetic position in cM at :data:`RECOMBINATION_RATE` (1 cM per Mb): the
        map of the simulated meioses and of the LD within blocks.
    family_id : ndarray, str, shape (n_samples,)
        PLINK FID: ``"FAM00001"``... shared by relatives, the IID otherwise.
    sample_id : ndarray, str, shape (n_samples,)
        Unique IID ``"<population>_<index>"``, e.g. ``"POP1_000123"``.
    sex : ndarray, int8, shape (n_samples,)
        1 male, 2 female.
    population : ndarray, str, shape (n_samples,)
        Population label ("POP1", "POP2", ...).
    pheno : pandas.DataFrame
        Columns FID, IID (str), QT (float64, about 2 % NaN) and BT (float64:
        1 control, 2 case, about 2 % NaN); one row per sample, in sample order.
    covar : pandas.DataFrame
        Columns FID, IID (str), SEX (int64, 1/2) and AGE (float64, years).
    truth : dict
        JSON-serialisable record of the simulation: ``params`` (the arguments),
        ``populations`` (sample count per population), ``relatives`` (one entry
        per related sampled pair: iid1, iid2, relationship, expected
        ``kinship``, ``degree`` and ``kinship_realized``, the IBD-based kinship
        of the simulated genotypes), ``causal_variants`` (variant_id,
        effect_qt, effect_bt per ALT allele), ``pedigree`` (iid, father,
        mother, sampled for every simulated child; unsampled parents have IIDs
        like ``"POP1_U000012"``), ``demography``, ``genome`` (layout) and
        ``phenotype_model``.
    """

    alt_count: np.ndarray
    contig: np.ndarray
    position: np.ndarray
    variant_id: np.ndarray
    ref: np.ndarray
    alt: np.ndarray
    cm_position: np.ndarray
    family_id: np.ndarray
    sample_id: np.ndarray
    sex: np.ndarray
    population: np.ndarray
    pheno: pandas.DataFrame
    covar: pandas.DataFrame
    truth: dict

    @property
    def n_variants(self) -> int:
        return self.alt_count.shape[0]

    @property
    def n_samples(self) -> int:
        return self.alt_count.shape[1]


# ---------------------------------------------------------------------------
# public API


def simulate_cohort(
    n_samples: int = 600,
    n_variants: int = 5000,
    *,
    n_populations: int = 3,
    n_contigs: int = 2,
    missing_rate: float = 0.01,
    relative_fraction: float = 0.1,
    n_causal: int = 20,
    h2: float = 0.5,
    prevalence: float = 0.3,
    seed: int = 1,
) -> SimulatedCohort:
    """Simulate a structured cohort with relatives, phenotypes and known truth.

    See the module docstring for the model.  600 samples x 5,000 variants take
    about 3 s; 10,000 x 100,000 about 1.5 min and 1.3 GB (of which 1 GB is
    ``alt_count``).

    Parameters
    ----------
    n_samples : int
        Number of sampled individuals (columns of ``alt_count``).
    n_variants : int
        Number of biallelic SNPs (rows of ``alt_count``), split as evenly as
        possible across contigs.
    n_populations : int
        Number of populations, ``POP1`` ... ``POP<n>``.
    n_contigs : int
        Number of independently simulated contigs, named "1", "2", ...
    missing_rate : float
        Fraction of calls set to -1, completely at random.
    relative_fraction : float
        Approximate fraction of samples that belong to a planted family.
    n_causal : int
        Number of causal variants for QT and BT (capped at the number of
        variants with MAF >= 0.05, then >= 0.01, then > 0).
    h2 : float
        Share of genetic variance in the non-covariate part of QT and of the
        BT liability, in [0, 1].
    prevalence : float
        Fraction of cases among samples with a BT value, in (0, 1).
    seed : int
        Seed; the same seed gives the same cohort.

    Returns
    -------
    SimulatedCohort
        ``alt_count`` is int8 of shape (n_variants, n_samples), -1 missing.
    """
    params = dict(
        n_samples=int(n_samples),
        n_variants=int(n_variants),
        n_populations=int(n_populations),
        n_contigs=int(n_contigs),
        missing_rate=float(missing_rate),
        relative_fraction=float(relative_fraction),
        n_causal=int(n_causal),
        h2=float(h2),
        prevalence=float(prevalence),
        seed=int(seed),
    )
    _check_params(**params)
    import pandas as pd

    streams = np.random.SeedSequence(int(seed)).spawn(6)
    rng_plan, rng_msp, rng_sites, rng_drop, rng_pheno, rng_miss = (np.random.default_rng(s) for s in streams)

    pop_names = [f"POP{i + 1}" for i in range(n_populations)]
    pop_sizes = _population_sizes(n_samples, n_populations)
    ped = _plan_pedigree(pop_sizes, relative_fraction, rng_plan)
    demography, demography_truth = _demography(pop_names)

    # founders per population, in msprime individual order
    founders = [i for i in range(ped.n) if ped.is_founder(i)]
    founders.sort(key=lambda i: ped.pop[i])  # stable: keeps order within a population
    founders_per_pop = np.bincount([ped.pop[i] for i in founders], minlength=n_populations)
    msp_index = {person: k for k, person in enumerate(founders)}

    # final sample order: a random permutation of the sampled people
    sampled = [i for i in range(ped.n) if ped.sampled[i]]
    assert len(sampled) == n_samples
    col = dict(zip(sampled, rng_plan.permutation(n_samples).tolist()))

    genome = _Genome(n_variants, n_contigs, 2 * len(founders), demography, pop_names, founders_per_pop)
    founder_cols = {p: (2 * k, 2 * k + 1) for p, k in msp_index.items()}  # msprime individual k: nodes 2k, 2k+1
    alt_count = np.empty((n_variants, n_samples), dtype=np.int8)
    alt_total = np.zeros(n_variants, dtype=np.int64)
    contigs, positions, refs, alts = [], [], [], []
    realized = np.zeros(len(ped.pairs))
    row = 0
    for c in range(n_contigs):
        segments = _gene_drop(ped, founder_cols, genome.contig_length, rng_drop)
        filler = _Filler(ped, segments, founder_cols, col, alt_count, alt_total, row)
        pos0 = []
        for (offset, quota), ts in zip(genome.blocks(c, rng_sites), genome.ancestry(c, rng_msp)):
            geno, block_pos0, ref, alt = _simulate_block(genome, quota, ts, rng_msp, rng_sites)
            pos0.append(offset + block_pos0)
            refs.append(ref)
            alts.append(alt)
            filler.add(geno, pos0[-1])
        filler.flush()
        pos0 = np.concatenate(pos0)
        if np.any(np.diff(pos0) <= 0) or pos0[-1] >= genome.contig_length:  # pragma: no cover - blocks overlap
            raise PopgenError(f"contig {c + 1}: simulated blocks overlap; use fewer variants per contig")
        for k, (a, b, *_rest) in enumerate(ped.pairs):
            realized[k] += _shared_ibd(segments[a], segments[b], pos0)
        contigs.append(np.full(len(pos0), str(c + 1)))
        positions.append(pos0 + 1)
        row += len(pos0)
    assert row == n_variants
    realized /= 4.0 * n_variants

    contig = np.concatenate(contigs)
    position = np.concatenate(positions).astype(np.int64)
    variant_id = np.char.add(np.char.add(contig, ":"), position.astype(str))
    ref = np.concatenate(refs)
    alt = np.concatenate(alts)
    cm_position = position * RECOMBINATION_RATE * 100.0

    # sample table, in final column order
    order = sorted(sampled, key=col.__getitem__)
    sample_id = np.array([_iid(ped, i, col) for i in order])
    population = np.array([pop_names[ped.pop[i]] for i in order])
    sex = np.array([ped.sex[i] for i in order], dtype=np.int8)
    family_id = np.array(
        [f"FAM{ped.family[i] + 1:05d}" if ped.family[i] >= 0 else sample_id[k] for k, i in enumerate(order)]
    )
    age = np.array([ped.age[i] for i in order])
    pop_index = np.array([ped.pop[i] for i in order])

    pheno_cols, causal, pheno_model = _phenotypes(
        alt_count, alt_total, sex, age, pop_index, pop_names, n_causal, h2, prevalence, rng_pheno
    )
    pheno = pd.DataFrame({"FID": family_id, "IID": sample_id, **pheno_cols})
    covar = pd.DataFrame({"FID": family_id, "IID": sample_id, "SEX": sex.astype(np.int64), "AGE": age})

    _apply_missing(alt_count, missing_rate, rng_miss)

    names = {i: (_iid(ped, i, col) if ped.sampled[i] else _unsampled_iid(ped, i, pop_names)) for i in range(ped.n)}
    truth = {
        "params": params,
        "populations": {name: int(np.sum(population == name)) for name in pop_names},
        "relatives": [
            {
                "iid1": names[a],
                "iid2": names[b],
                "relationship": rel,
                "kinship": kin,
                "degree": _DEGREE[kin],
                "kinship_realized": round(float(realized[k]), 6),
            }
            for k, (a, b, rel, kin) in enumerate(ped.pairs)
        ],
        "causal_variants": [
            {"variant_id": str(variant_id[v]), "effect_qt": float(eq), "effect_bt": float(eb)}
            for v, eq, eb in causal
        ],
        "pedigree": [
            {
                "iid": names[i],
                "father": names[ped.father[i]],
                "mother": names[ped.mother[i]],
                "sampled": bool(ped.sampled[i]),
            }
            for i in range(ped.n)
            if ped.father[i] >= 0
        ],
        "demography": demography_truth,
        "genome": genome.truth(),
        "phenotype_model": pheno_model,
    }
    return SimulatedCohort(
        alt_count=alt_count,
        contig=contig,
        position=position,
        variant_id=variant_id,
        ref=ref,
        alt=alt,
        cm_position=cm_position,
        family_id=family_id,
        sample_id=sample_id,
        sex=sex,
        population=population,
        pheno=pheno,
        covar=covar,
        truth=truth,
    )


def write_truth(cohort: SimulatedCohort, path: str | os.PathLike) -> None:
    """Write ``cohort.truth`` as JSON, atomically (temporary file, then ``os.replace``).

    Parameters
    ----------
    cohort : SimulatedCohort
        The cohort whose truth to write.
    path : str or PathLike
        Destination file; its directory must exist.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".truth-", suffix=".json.tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(cohort.truth, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------
# parameters and demography


def _check_params(*, n_samples, n_variants, n_populations, n_contigs, missing_rate, relative_fraction,
                  n_causal, h2, prevalence, seed) -> None:
    if n_populations < 1:
        raise PopgenError(f"n_populations must be >= 1, got {n_populations}")
    if n_samples < 2 * n_populations:
        raise PopgenError(f"n_samples must be >= 2 * n_populations ({2 * n_populations}), got {n_samples}")
    if n_contigs < 1:
        raise PopgenError(f"n_contigs must be >= 1, got {n_contigs}")
    if n_variants < n_contigs:
        raise PopgenError(f"n_variants must be >= n_contigs ({n_contigs}), got {n_variants}")
    if not 0.0 <= missing_rate < 1.0:
        raise PopgenError(f"missing_rate must be in [0, 1), got {missing_rate}")
    if not 0.0 <= relative_fraction <= 1.0:
        raise PopgenError(f"relative_fraction must be in [0, 1], got {relative_fraction}")
    if n_causal < 0:
        raise PopgenError(f"n_causal must be >= 0, got {n_causal}")
    if not 0.0 <= h2 <= 1.0:
        raise PopgenError(f"h2 must be in [0, 1], got {h2}")
    if not 0.0 < prevalence < 1.0:
        raise PopgenError(f"prevalence must be in (0, 1), got {prevalence}")
    if seed < 0:
        raise PopgenError(f"seed must be >= 0, got {seed}")


def _population_sizes(n_samples: int, k: int) -> list[int]:
    """Unequal sample sizes per population (weights 1 / (1 + i/4)), at least 2 each, summing to n_samples."""
    w = 1.0 / (1.0 + 0.25 * np.arange(k))
    raw = (n_samples - 2 * k) * w / w.sum()
    sizes = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - sizes), kind="stable")[: n_samples - 2 * k - sizes.sum()]:
        sizes[i] += 1
    return (sizes + 2).tolist()


def _split_times(k: int) -> list[float]:
    """Time (generations ago) at which POP(i+1) joins the ancestor of POP1..POPi, i = 1..k-1."""
    return [300.0, 1500.0, *(1500.0 + 1000.0 * j for j in range(1, k - 2))][: k - 1]


def _demography(pop_names: list[str]):
    import msprime

    d = msprime.Demography()
    for name in pop_names:
        d.add_population(name=name, initial_size=NE)
    times = _split_times(len(pop_names))
    splits = []
    current = pop_names[0]
    for i, t in enumerate(times):
        anc = f"ANC{i + 1}"
        d.add_population(name=anc, initial_size=NE)
        d.add_population_split(time=t, derived=[current, pop_names[i + 1]], ancestral=anc)
        splits.append({"time": t, "derived": [current, pop_names[i + 1]], "ancestral": anc})
        current = anc
    return d, {"Ne": NE, "splits": splits, "recombination_rate": RECOMBINATION_RATE,
               "mutation_rate": MUTATION_RATE}


# ---------------------------------------------------------------------------
# pedigree planning

_DEGREE = {0.5: 0, 0.25: 1, 0.125: 2}


class _Pedigree:
    """People in topological order (parents before children), sampled or not."""

    def __init__(self):
        self.pop: list[int] = []
        self.sex: list[int] = []
        self.father: list[int] = []
        self.mother: list[int] = []
        self.clone_of: list[int] = []
        self.sampled: list[bool] = []
        self.family: list[int] = []
        self.age: list[float] = []
        self.pairs: list[tuple[int, int, str, float]] = []  # (a, b, relationship, expected kinship)
        self.n_families = 0

    @property
    def n(self) -> int:
        return len(self.pop)

    def add(self, pop, sex, *, father=-1, mother=-1, clone_of=-1, sampled=True, family=-1, age=np.nan) -> int:
        self.pop.append(pop)
        self.sex.append(sex)
        self.father.append(father)
        self.mother.append(mother)
        self.clone_of.append(clone_of)
        self.sampled.append(sampled)
        self.family.append(family)
        self.age.append(float(age))
        return self.n - 1

    def is_founder(self, i: int) -> bool:
        return self.father[i] < 0 and self.clone_of[i] < 0

    def kinship(self, a: int, b: int) -> float:
        """Expected kinship coefficient relative to the (unrelated, non-inbred) founders."""
        a = a if self.clone_of[a] < 0 else self.clone_of[a]
        b = b if self.clone_of[b] < 0 else self.clone_of[b]
        if a == b:
            return 0.5
        if a < b:
            a, b = b, a
        if self.father[a] < 0:  # the younger is a founder: nobody older descends from it
            return 0.0
        return 0.5 * (self.kinship(self.father[a], b) + self.kinship(self.mother[a], b))


def _age(rng, base, generations_up):
    return float(np.clip(round(base + 28.0 * generations_up + rng.normal(0.0, 3.0), 1), 18.0, 95.0))


def _family_trio(ped, pop, fam, rng):
    base = rng.uniform(18, 40)
    f = ped.add(pop, 1, family=fam, age=_age(rng, base, 1))
    m = ped.add(pop, 2, family=fam, age=_age(rng, base, 1))
    c = ped.add(pop, int(rng.integers(1, 3)), father=f, mother=m, family=fam, age=_age(rng, base, 0))
    return [(f, c, "parent-offspring"), (m, c, "parent-offspring")]


def _family_full_sibs(ped, pop, fam, rng):
    base = rng.uniform(18, 50)
    f = ped.add(pop, 1, sampled=False, family=fam)
    m = ped.add(pop, 2, sampled=False, family=fam)
    s1 = ped.add(pop, int(rng.integers(1, 3)), father=f, mother=m, family=fam, age=_age(rng, base, 0))
    s2 = ped.add(pop, int(rng.integers(1, 3)), father=f, mother=m, family=fam, age=_age(rng, base, 0))
    return [(s1, s2, "full-sibling")]


def _family_half_sibs(ped, pop, fam, rng):
    base = rng.uniform(18, 50)
    shared_sex = int(rng.integers(1, 3))
    shared = ped.add(pop, shared_sex, sampled=False, family=fam)
    kids = []
    for _ in range(2):
        other = ped.add(pop, 3 - shared_sex, sampled=False, family=fam)
        f, m = (shared, other) if shared_sex == 1 else (other, shared)
        kids.append(ped.add(pop, int(rng.integers(1, 3)), father=f, mother=m, family=fam, age=_age(rng, base, 0)))
    return [(kids[0], kids[1], "half-sibling")]


def _family_grandparent(ped, pop, fam, rng):
    base = rng.uniform(18, 35)
    g_sex = int(rng.integers(1, 3))
    g1 = ped.add(pop, g_sex, family=fam, age=_age(rng, base, 2))
    g2 = ped.add(pop, 3 - g_sex, sampled=False, family=fam)
    f, m = (g1, g2) if g_sex == 1 else (g2, g1)
    p_sex = int(rng.integers(1, 3))
    p = ped.add(pop, p_sex, father=f, mother=m, sampled=False, family=fam)
    s = ped.add(pop, 3 - p_sex, sampled=False, family=fam)
    f, m = (p, s) if p_sex == 1 else (s, p)
    k = ped.add(pop, int(rng.integers(1, 3)), father=f, mother=m, family=fam, age=_age(rng, base, 0))
    return [(g1, k, "grandparent")]


def _family_avuncular(ped, pop, fam, rng):
    base = rng.uniform(18, 40)
    g1 = ped.add(pop, 1, sampled=False, family=fam)
    g2 = ped.add(pop, 2, sampled=False, family=fam)
    p_sex = int(rng.integers(1, 3))
    p = ped.add(pop, p_sex, father=g1, mother=g2, sampled=False, family=fam)
    u = ped.add(pop, int(rng.integers(1, 3)), father=g1, mother=g2, family=fam, age=_age(rng, base, 1))
    s = ped.add(pop, 3 - p_sex, sampled=False, family=fam)
    f, m = (p, s) if p_sex == 1 else (s, p)
    n = ped.add(pop, int(rng.integers(1, 3)), father=f, mother=m, family=fam, age=_age(rng, base, 0))
    return [(u, n, "avuncular")]


def _family_duplicate(ped, pop, fam, rng):
    age = _age(rng, rng.uniform(18, 70), 0)
    x = ped.add(pop, int(rng.integers(1, 3)), family=fam, age=age)
    y = ped.add(pop, ped.sex[x], clone_of=x, family=fam, age=age)
    return [(x, y, "duplicate")]


# (builder, number of sampled members)
_ROUND = [(_family_trio, 3), (_family_full_sibs, 2), (_family_half_sibs, 2),
          (_family_grandparent, 2), (_family_avuncular, 2)]


def _plan_pedigree(pop_sizes: list[int], relative_fraction: float, rng) -> _Pedigree:
    """Plant families (one duplicate pair, then rounds of trio, FS, HS, GP, AV), then unrelated founders."""
    ped = _Pedigree()
    k = len(pop_sizes)
    room = list(pop_sizes)
    budget = int(round(relative_fraction * sum(pop_sizes)))
    plan = [(_family_duplicate, 2)]
    while sum(size for _, size in plan) < budget:
        plan.extend(_ROUND)
    turn = 0
    for builder, size in plan:
        if size > budget:
            continue
        pop = turn % k
        if room[pop] < size:
            pop = int(np.argmax(room))
            if room[pop] < size:
                continue
        turn += 1
        pairs = builder(ped, pop, ped.n_families, rng)
        ped.n_families += 1
        budget -= size
        room[pop] -= size
        for a, b, rel in pairs:
            ped.pairs.append((a, b, rel, ped.kinship(a, b)))
    # every related sampled pair within a family is declared
    fams: dict[int, list[int]] = {}
    for i in range(ped.n):
        if ped.sampled[i]:
            fams.setdefault(ped.family[i], []).append(i)
    declared = {(a, b) for a, b, *_ in ped.pairs}
    for members in fams.values():
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                a, b = members[x], members[y]
                kin = ped.kinship(a, b)
                assert kin == 0.0 or (a, b) in declared or (b, a) in declared, (a, b, kin)
    for a, b, rel, kin in ped.pairs:
        assert kin in _DEGREE, (rel, kin)
    # unrelated founders fill each population
    for pop in range(k):
        for _ in range(room[pop]):
            age = float(np.clip(round(rng.normal(50.0, 12.0), 1), 18.0, 90.0))
            ped.add(pop, int(rng.integers(1, 3)), age=age)
    return ped


def _iid(ped: _Pedigree, i: int, col: dict) -> str:
    return f"POP{ped.pop[i] + 1}_{col[i]:06d}"


def _unsampled_iid(ped: _Pedigree, i: int, pop_names: list[str]) -> str:
    return f"{pop_names[ped.pop[i]]}_U{i:06d}"


# ---------------------------------------------------------------------------
# ancestry and sites


def _harmonic(n: int) -> float:
    return float(np.sum(1.0 / np.arange(1, n)))


class _Genome:
    """Layout of the pseudo-genome: contig length, msprime blocks and their SNP quotas."""

    def __init__(self, n_variants, n_contigs, n_haps, demography, pop_names, founders_per_pop):
        import msprime

        self.contig_length = int(min(GENOME_LENGTH // n_contigs, MAX_CONTIG_LENGTH))
        self.per_contig = [n_variants // n_contigs + (c < n_variants % n_contigs) for c in range(n_contigs)]
        n_blocks = min(-(-n_variants // BLOCK_SNPS), MAX_BLOCKS, BLOCK_HAPLOTYPES // n_haps)
        n_blocks = max(n_blocks, n_contigs)
        self.n_blocks = [max(1, min(n_c, round(n_blocks * n_c / n_variants))) for n_c in self.per_contig]
        self.demography = demography
        self.samples = [msprime.SampleSet(int(n), population=name, ploidy=2)
                        for name, n in zip(pop_names, founders_per_pop) if n > 0]
        self.n_haps = n_haps
        self.harmonic = _harmonic(n_haps)

    def blocks(self, c, rng):
        """Yield (0-based offset, SNP quota) for the blocks of contig ``c``, left to right."""
        n_c, b_c = self.per_contig[c], self.n_blocks[c]
        slot = self.contig_length / b_c
        room = max(slot - 4 * self.block_length(c), 0.0)  # a block short of sites may grow (rarely)
        for k in range(b_c):
            yield int(k * slot + rng.uniform(0.0, room)), n_c // b_c + (k < n_c % b_c)

    def block_length(self, c) -> int:
        """At least BLOCK_LENGTH, and long enough for ~4x the largest quota of contig ``c`` at 1e-8."""
        quota = -(-self.per_contig[c] // self.n_blocks[c])
        return int(max(BLOCK_LENGTH, np.ceil(4 * quota / (4.0 * NE * MUTATION_RATE * self.harmonic))))

    def ancestry(self, c, rng):
        """Yield the ancestry tree sequences of the blocks of contig ``c`` (msprime replicates)."""
        import msprime

        return msprime.sim_ancestry(
            samples=self.samples, demography=self.demography, sequence_length=self.block_length(c),
            recombination_rate=RECOMBINATION_RATE, random_seed=int(rng.integers(1, 2**31 - 1)),
            num_replicates=self.n_blocks[c],
        )

    def truth(self) -> dict:
        return {
            "contig_length_bp": self.contig_length,
            "meiosis_morgans_per_contig": self.contig_length * RECOMBINATION_RATE,
            "blocks_per_contig": self.n_blocks,
            "block_length_bp": [self.block_length(c) for c in range(len(self.per_contig))],
            "common_fraction": COMMON_FRACTION,
            "common_maf": COMMON_MAF,
        }


def _simulate_block(genome: _Genome, quota: int, ts, rng_msp, rng_sites):
    """Add mutations to one msprime block (an ancestry tree sequence) and ascertain ``quota`` biallelic SNPs.

    Returns
    -------
    geno : ndarray, int8, shape (quota, n_haps)
        Derived-allele indicator per founder haplotype (msprime sample node order).
    pos0 : ndarray, int64, shape (quota,)
        0-based positions within the block, increasing.
    ref, alt : ndarray, str, shape (quota,)
        Ancestral and derived base.
    """
    import msprime
    import tskit

    # A random subset of the sites of a simulation at 1e-8 is a simulation at a lower
    # rate: aim at ~4x the quota (more under population structure) to ascertain from.
    rate = min(MUTATION_RATE, 4.0 * quota / (4.0 * NE * ts.sequence_length * genome.harmonic))
    for _attempt in range(40):
        mts = msprime.sim_mutations(ts, rate=rate, random_seed=int(rng_msp.integers(1, 2**31 - 1)))
        tables = mts.tables
        n_mut = np.bincount(tables.mutations.site, minlength=mts.num_sites)
        single = np.flatnonzero(n_mut == 1)
        node = tables.mutations.node[np.searchsorted(tables.mutations.site, single)]
        position = tables.sites.position[single]
        count = np.zeros(mts.num_sites, dtype=np.int64)  # ALT count in the founders; 0: not a single-mutation site
        tree_index = (np.searchsorted(mts.breakpoints(as_array=True), position, side="right") - 1).tolist()
        tree = mts.first()
        for k, (i, u) in enumerate(zip(tree_index, node.tolist())):
            if tree.index != i:
                tree.seek_index(i)
            count[single[k]] = tree.num_samples(u)
        anc = np.array(tskit.unpack_strings(tables.sites.ancestral_state, tables.sites.ancestral_state_offset))
        der = np.full(mts.num_sites, "", dtype=object)
        der_all = tskit.unpack_strings(tables.mutations.derived_state, tables.mutations.derived_state_offset)
        der[tables.mutations.site[::-1]] = np.array(der_all, dtype=object)[::-1]  # first mutation per site
        der = der.astype(str)
        ok = (count > 0) & (count < genome.n_haps) & (anc != der)
        if np.count_nonzero(ok) >= quota:
            break
        if rate < MUTATION_RATE:
            rate = min(MUTATION_RATE, 2.0 * rate)
        else:  # too short even at the full rate (not expected): a longer block
            ts = msprime.sim_ancestry(
                samples=genome.samples, demography=genome.demography, sequence_length=2 * ts.sequence_length,
                recombination_rate=RECOMBINATION_RATE, random_seed=int(rng_msp.integers(1, 2**31 - 1)),
            )
    else:  # pragma: no cover
        raise PopgenError(f"could not simulate {quota} biallelic sites")
    freq = count / genome.n_haps
    maf = np.minimum(freq, 1.0 - freq)
    common = np.flatnonzero(ok & (maf >= COMMON_MAF))
    rare = np.flatnonzero(ok & (maf < COMMON_MAF))
    n_common = min(len(common), int(rng_sites.binomial(quota, COMMON_FRACTION)))
    n_rare = min(len(rare), quota - n_common)
    n_common = quota - n_rare
    keep = np.sort(np.concatenate([
        rng_sites.choice(common, size=n_common, replace=False),
        rng_sites.choice(rare, size=n_rare, replace=False),
    ]))
    geno = np.empty((quota, genome.n_haps), dtype=np.int8)
    variant = tskit.Variant(mts)
    for j, site in enumerate(keep):
        variant.decode(site)
        geno[j] = variant.genotypes
    pos0 = tables.sites.position[keep].astype(np.int64)
    return geno, pos0, anc[keep], der[keep]


# ---------------------------------------------------------------------------
# gene dropping
#
# A haplotype of a pedigree member on one contig is piecewise constant in the
# founder haplotype it copies: (breaks, labels) with breaks[0] == 0; the base at
# 0-based position x copies founder haplotype (genotype column)
# labels[searchsorted(breaks, x, "right") - 1].


def _label_at(hap, pos0):
    breaks, labels = hap
    return labels[np.searchsorted(breaks, pos0, side="right") - 1]


def _meiosis(haps, length, rng):
    """One gamete of a parent with haplotypes ``haps``: crossovers Poisson at RECOMBINATION_RATE."""
    cross = np.sort(rng.uniform(0.0, length, size=rng.poisson(length * RECOMBINATION_RATE)))
    start = int(rng.integers(0, 2))
    points = np.unique(np.concatenate([[0.0], haps[0][0], haps[1][0], cross]))
    parity = (start + np.searchsorted(cross, points, side="right")) % 2
    labels = np.where(parity == 0, _label_at(haps[0], points), _label_at(haps[1], points))
    keep = np.concatenate([[True], labels[1:] != labels[:-1]])
    return points[keep], labels[keep]


def _gene_drop(ped, founder_cols, length, rng):
    """Haplotype segments of every person on one contig (a list indexed by person)."""
    zero = np.zeros(1)
    segments: list = [None] * ped.n
    for i in range(ped.n):
        if ped.clone_of[i] >= 0:
            segments[i] = segments[ped.clone_of[i]]
        elif ped.father[i] < 0:
            h0, h1 = founder_cols[i]
            segments[i] = ((zero, np.array([h0])), (zero, np.array([h1])))
        else:
            segments[i] = (_meiosis(segments[ped.father[i]], length, rng),
                           _meiosis(segments[ped.mother[i]], length, rng))
    return segments


def _shared_ibd(seg_a, seg_b, pos0) -> float:
    """Sum over the four haplotype pairs of the number of positions copying the same founder haplotype."""
    la = [_label_at(h, pos0) for h in seg_a]
    lb = [_label_at(h, pos0) for h in seg_b]
    return float(sum(np.count_nonzero(x == y) for x in la for y in lb))


class _Filler:
    """Turns founder haplotypes, block by block, into ALT counts of the sampled people (buffered)."""

    def __init__(self, ped, segments, founder_cols, col, alt_count, alt_total, row):
        self.alt_count, self.alt_total, self.row = alt_count, alt_total, row
        # output column -> founder haplotype columns (founders and their duplicates); 0 for children
        self.c0 = np.zeros(len(col), dtype=np.int64)
        self.c1 = np.zeros(len(col), dtype=np.int64)
        for i in range(ped.n):
            if ped.sampled[i] and ped.father[i] < 0:
                self.c0[col[i]], self.c1[col[i]] = founder_cols[i if ped.clone_of[i] < 0 else ped.clone_of[i]]
        mosaic = [i for i in range(ped.n) if ped.sampled[i] and ped.father[i] >= 0]  # gene-dropped children
        self.mosaic_cols = np.array([col[i] for i in mosaic], dtype=np.int64)
        self.mosaic_haps = [h for i in mosaic for h in segments[i]]
        self.buffer: list = []
        self.buffered = 0

    def add(self, geno, pos0):
        self.buffer.append((geno, pos0))
        self.buffered += len(pos0)
        if self.buffered * geno.shape[1] >= 32_000_000:
            self.flush()

    def flush(self):
        if not self.buffer:
            return
        h = np.concatenate([g for g, _ in self.buffer])
        pos0 = np.concatenate([p for _, p in self.buffer])
        self.buffer, self.buffered = [], 0
        rows = slice(self.row, self.row + len(pos0))
        out = self.alt_count[rows]
        np.take(h, self.c0, axis=1, out=out, mode="clip")  # whole rows, in output order: fast
        np.add(out, np.take(h, self.c1, axis=1, mode="clip"), out=out)
        if self.mosaic_haps:
            labels = np.stack([_label_at(hap, pos0) for hap in self.mosaic_haps], axis=1)  # (rows, 2 * n_mosaic)
            g = np.take_along_axis(h, labels, axis=1)
            out[:, self.mosaic_cols] = g[:, 0::2] + g[:, 1::2]
        self.alt_total[rows] = out.sum(axis=1, dtype=np.int64)
        self.row += len(pos0)


# ---------------------------------------------------------------------------
# phenotypes and missingness


def _phenotypes(alt_count, alt_total, sex, age, pop_index, pop_names, n_causal, h2, prevalence, rng):
    n_variants, n_samples = alt_count.shape
    freq = alt_total / (2.0 * n_samples)
    maf = np.minimum(freq, 1.0 - freq)
    candidates = np.array([], dtype=np.int64)
    for threshold in (CAUSAL_MIN_MAF, 0.01, 1e-12):
        candidates = np.flatnonzero(maf >= threshold)
        if len(candidates) >= n_causal:
            break
    n_causal = min(n_causal, len(candidates))
    causal = np.sort(rng.choice(candidates, size=n_causal, replace=False)) if n_causal else candidates[:0]
    x = alt_count[causal].astype(np.float64)  # true genotypes: missingness comes later
    scale = 1.0 / np.sqrt(2.0 * freq[causal] * (1.0 - freq[causal]))

    def genetic(z):
        beta = z * scale
        g = beta @ x
        v = g.var()
        c = np.sqrt(h2 / v) if v > 0 else 0.0
        return beta * c, (g - g.mean()) * c

    shift = _POP_SHIFT_STEP * np.arange(len(pop_names))
    fixed = _SEX_EFFECT * (sex == 2) + _AGE_EFFECT * (age - 50.0) + shift[pop_index]
    noise_sd = np.sqrt(1.0 - h2)
    effect_qt, g_qt = genetic(rng.standard_normal(n_causal))
    qt = g_qt + fixed + rng.normal(0.0, noise_sd, n_samples)
    effect_bt, g_bt = genetic(rng.standard_normal(n_causal))
    liability = g_bt + fixed + rng.normal(0.0, noise_sd, n_samples)
    threshold = np.quantile(liability, 1.0 - prevalence)
    bt = np.where(liability > threshold, 2.0, 1.0)
    qt[rng.random(n_samples) < PHENO_MISSING] = np.nan
    bt[rng.random(n_samples) < PHENO_MISSING] = np.nan
    model = {
        "qt": "genetic + SEX_EFFECT*(SEX==2) + AGE_EFFECT*(AGE-50) + population_shift + noise",
        "bt": "2 (case) if liability > threshold else 1; liability built like QT with effect_bt and its own noise",
        "genetic_variance": h2,
        "noise_variance": 1.0 - h2,
        "sex_effect": _SEX_EFFECT,
        "age_effect": _AGE_EFFECT,
        "population_shift": {name: float(s) for name, s in zip(pop_names, shift)},
        "liability_threshold": float(threshold),
        "causal_min_maf": CAUSAL_MIN_MAF,
        "pheno_missing": PHENO_MISSING,
    }
    return {"QT": qt, "BT": bt}, list(zip(causal.tolist(), effect_qt, effect_bt)), model


def _apply_missing(alt_count, missing_rate, rng, calls_per_block=10_000_000):
    """Set about ``missing_rate`` of the calls to -1, completely at random, block by block."""
    if missing_rate <= 0:
        return
    n_variants, n_samples = alt_count.shape
    rows = max(1, calls_per_block // max(n_samples, 1))
    for r0 in range(0, n_variants, rows):
        block = alt_count[r0:r0 + rows].reshape(-1)
        n_missing = rng.binomial(block.size, missing_rate)
        block[rng.choice(block.size, size=n_missing, replace=False)] = -1
