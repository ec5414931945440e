#!/usr/bin/env bash
# Regenerates the bundled example cohort and the PLINK 2 reference outputs the
# tests compare against.  Run from the repository root:
#
#   bash tests/data/make_reference.sh
#
# PLINK v2.00a3.5 AVX2 (9 Aug 2022), Debian package plink2, made these files.
set -euo pipefail
cd "$(dirname "$0")/../.."
EX=popgen/data/example/example
REF=tests/data/plink2
PY=${PYTHON:-.venv/bin/python}

# 1. the example cohort: 600 samples (3 populations, planted relatives), 5000 variants
$PY -m popgen simulate --out "$EX" --n-samples 600 --n-variants 5000 --seed 1 --no-vcz
rm -f "$EX.log"

# 2. PLINK 2 reports on the input (frequencies and HWE on founders, as by default)
mkdir -p "$REF"
P2=(plink2 --threads 2 --silent --bfile "$EX")
"${P2[@]}" --freq --hardy --missing --het --geno-counts --out "$REF/example"
# all samples (what VCF input, which has no parents, must equal)
"${P2[@]}" --freq --hardy --het --nonfounders --out "$REF/example.nonfounders"
# filters in PLINK 2's order: the samples and variants that remain
"${P2[@]}" --mind 0.011 --geno 0.02 --hwe 1e-3 --maf 0.05 --write-snplist --make-just-fam \
  --out "$REF/example.filtered"
rm -f "$REF"/*.log

# PCA on the example (all variants): exact with PLINK 2's default missing-call
# handling, and with mean imputation (what the randomized solver uses)
"${P2[@]}" --pca 10 --out "$REF/example.pca"
"${P2[@]}" --pca 10 meanimpute --out "$REF/example.pca.meanimpute"
rm -f "$REF"/*.log

# ---------------------------------------------------------------------------
# 3. LD pruning (popgen.ld.ld_prune): --indep-pairwise keep lists (founders, as by
#    default); tests/test_ld.py compares .prune.in byte for byte
"${P2[@]}" --indep-pairwise 50 5 0.2 --out "$REF/example.ld_50_5_0.2"
"${P2[@]}" --indep-pairwise 200 kb 1 0.5 --out "$REF/example.ld_200kb_1_0.5"
"${P2[@]}" --indep-pairwise 100 10 0.1 --out "$REF/example.ld_100_10_0.1"
# --nonfounders: r^2 stays on founders, only the tie-break allele frequencies use all
# samples (popgen: samples=founder_mask, allele_frequency=all-sample frequencies)
"${P2[@]}" --indep-pairwise 50 5 0.2 --nonfounders --out "$REF/example.nonfounders.ld_50_5_0.2"
rm -f "$REF"/*.prune.out "$REF"/*.log

# ---------------------------------------------------------------------------
# 4. Relatedness (popgen.relatedness): KING-robust kinship of pairs with
#    KINSHIP >= 0.02 (gzipped), and --king-cutoff keep/remove lists at the 2nd-
#    and 1st-degree thresholds.  The GRM (--make-rel, 600 x 600) is too large to
#    commit: tests/test_relatedness.py runs plink2 for it at test time.
"${P2[@]}" --make-king-table --king-table-filter 0.02 --out "$REF/example.king"
gzip -n -9 -f "$REF/example.king.kin0"
"${P2[@]}" --king-cutoff 0.0884 --out "$REF/example.king_0.0884"
"${P2[@]}" --king-cutoff 0.177 --out "$REF/example.king_0.177"
rm -f "$REF"/*.log

# ---------------------------------------------------------------------------
# 5. Association (popgen.association): --glm on QT (linear) and BT (logistic).
#    hide-covar: one ADD row per variant; firth-fallback is a3.5's default, spelled
#    out.  Covariates SEX AGE as they are: a3.5 needs no --covar-variance-standardize
#    for these scales (its UNSTABLE_SCALE check passes).  tests/test_association.py
#    compares estimates, OBS_CT, A1, FIRTH? and ERRCODE.
GLM=(--pheno "$EX.pheno" --covar "$EX.covar" --covar-name SEX AGE)
"${P2[@]}" "${GLM[@]}" --pheno-name QT BT --glm hide-covar firth-fallback --out "$REF/example.glm"
# BT on the rare variants (founder MAF <= 0.01) without Firth (SEPARATION,ALT1|REF
# error codes) and with Firth for every variant (.glm.firth)
"${P2[@]}" "${GLM[@]}" --pheno-name BT --max-maf 0.01 --glm hide-covar no-firth --out "$REF/example.glm.rare"
"${P2[@]}" "${GLM[@]}" --pheno-name BT --max-maf 0.01 --glm hide-covar firth --out "$REF/example.glm.rare"
rm -f "$REF"/*.log

# ---------------------------------------------------------------------------
# 6. Sex chromosomes in --glm (popgen.association.sex_chromosome_inputs): a cohort with
#    chrX, XY, chrY and MT between two autosomes (tests/data/make_sexchrom.py).  PLINK 2
#    adds the .fam sex as a covariate on chrX (genotypes as coded: males 0/2), scans chrY
#    on males only and chrY/MT as haploid 0/1 dosages.  With SEX among the covariates it
#    stops on chrX (VIF_INFINITE) unless told no-x-sex: those are popgen's results there.
$PY tests/data/make_sexchrom.py
SX=tests/data/sexchrom/sexchrom
P2S=(plink2 --threads 2 --silent --bfile "$SX" --pheno "$SX.pheno" --covar "$SX.covar")
"${P2S[@]}" --covar-name AGE --glm hide-covar firth-fallback --out "$REF/sexchrom.glm"
"${P2S[@]}" --covar-name AGE,SEX --glm hide-covar firth-fallback no-x-sex --out "$REF/sexchrom.sexcovar.glm"
# --ci 0.95: L95 U95 after the standard error (normal quantile, exponentiated for odds ratios)
"${P2S[@]}" --covar-name AGE --glm hide-covar firth-fallback --ci 0.95 --out "$REF/sexchrom.ci.glm"
rm -f "$REF"/*.log
#    QC reports and filters on the same cohort: --freq/--missing count chrX males as
#    one allele, chrY males only, MT haploid; --het and .hardy use the autosomes and XY,
#    .hardy.x tests chrX (Graffelman and Weir's exact test), which --hwe uses there too;
#    .gcount (haploid calls apart) is the federated pooled panel's reference.
P2Q=(plink2 --threads 2 --silent --bfile "$SX")
"${P2Q[@]}" --freq --hardy --missing --het --geno-counts --out "$REF/sexchrom"
"${P2Q[@]}" --maf 0.1 --geno 0.012 --mind 0.012 --hwe 0.05 --write-snplist --make-just-fam \
  --out "$REF/sexchrom.filtered"
rm -f "$REF"/*.log
#    --indep-pairwise on chrX (a male's call once, others twice, male heterozygotes missing),
#    chrY (males), MT (haploid) and XY, on a cohort with LD blocks (tests/test_ld.py)
LX=tests/data/sexchrom/ldsex
P2L=(plink2 --threads 2 --silent --bfile "$LX")
"${P2L[@]}" --indep-pairwise 50 5 0.2 --out "$REF/ldsex.ld_50_5_0.2"
"${P2L[@]}" --indep-pairwise 20 kb 1 0.5 --out "$REF/ldsex.ld_20kb_1_0.5"
rm -f "$REF"/ldsex*.prune.out "$REF"/*.log
