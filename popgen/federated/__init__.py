"""Federated analysis: sites share aggregate statistics only; the coordinator combines them
into results equal to a pooled analysis.

The protocol (every step is a file a data access committee can inspect):

1. The coordinator writes a **plan** (:mod:`popgen.federated.plan`): variants by ID and
   alleles, phenotypes and covariates, PCA settings, privacy thresholds.  Its SHA-256
   identifies the analysis; every bundle carries it and bundles of another plan are refused.
2. Each site runs ``popgen federated export`` (:mod:`popgen.federated.site`) on its own
   data and devices, writing **bundles** (:mod:`popgen.federated.bundle`): ``counts``
   (genotype counts per variant), ``linear`` (sufficient statistics of the pooled linear
   GWAS), ``sumstats`` (its own GWAS, for meta-analysis) and, per PCA round, ``pca-product``.
3. The coordinator runs ``popgen federated combine`` (:mod:`popgen.federated.coordinator`):
   a pooled frequency panel, the pooled linear GWAS, a meta-analysis, and the PCA rounds
   (a ``pca-basis`` bundle goes back to the sites each round; the last round writes a
   reference PCA that each site projects its own samples onto with ``popgen pca-project``).

Privacy, enforced in code: no array has a samples dimension (bundle dimensions are fixed
by the plan); a site below ``privacy.min_samples`` refuses to export; per-variant
statistics resting on fewer than ``privacy.min_allele_count`` minor alleles (or on
between 1 and ``privacy.min_missing_count`` - 1 missing calls, for the GWAS statistics)
are withheld; the manifest of every bundle lists each array, its shape and meaning.

chrX, chrY and MT are modelled as ``popgen gwas`` models them on the pooled cohort (with
site indicators): the ``linear`` bundle also holds chrX's statistics with the .fam sex as
a covariate (over the samples of known sex) and chrY's over the males, with the moments of
the covariates (and sex) from which the coordinator decides, as on the pooled cohort,
whether chrX takes the sex covariate and which covariates are constant among the males;
``sumstats`` bundles hold each site's own ``popgen gwas`` results per run.  A site whose
samples of unknown sex are between 1 and ``min_missing_count`` - 1 among a phenotype's
withholds that phenotype's chrX-with-sex statistics (they would tell those samples apart
from the statistics without it); the coordinator then tests chrX for it only where the
pooled model needs no sex covariate, and says so.

What exact pooling cannot hide: the linear GWAS statistics of two variants whose
missing-call sets differ by a few samples differ by those samples' contributions.  The
missing-cell threshold stops the direct case (a variant with one missing call next to a
fully called one); a site worried about deliberate differencing across many variants
should also filter on call rate before export (``--geno``-style ``--extract`` lists).
"""
