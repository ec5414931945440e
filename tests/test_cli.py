"""The command line: help, exit codes, one-line errors, no partial output, start-up imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import make_dataset, random_alt
from popgen.cli import main
from popgen.io.plink import write_plink

REPO = Path(__file__).parents[1]


@pytest.fixture
def bfile(tmp_path, rng):
    write_plink(make_dataset(random_alt(rng, 60, 40, missing=0.03), chunks=(16, 16)), tmp_path / "c")
    return tmp_path / "c"


def popgen(*args):
    """Run the CLI in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "popgen", *map(str, args)], capture_output=True, text=True, cwd=REPO)


def assert_one_line_error(res, *fragments):
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = [line for line in res.stderr.splitlines() if line.startswith("popgen: error:")]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    for frag in fragments:
        assert str(frag) in lines[0]


def test_help_on_every_command():
    from popgen.cli import cli

    assert main(["--help"]) == 0
    for name in cli.commands:
        assert main([name, "--help"]) == 0, name


def test_import_and_help_do_not_load_heavy_libraries():
    code = "import sys, popgen, popgen.cli; print(sorted(m for m in ('dask','sgkit','xarray','numba','cupy','numpy','zarr','pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"



def test_second_process_compiles_no_numba_kernel(tmp_path):
    """Every command's numba kernels come from the on-disk cache in the next process: the
    second run of each command writes no cache entry (a closure over a dispatcher or an
    intrinsic gets a new cache key, and a compile of ~0.5 s, in every process).  A cache
    directory of its own: tests in parallel processes add entries to the shared one."""
    import os

    from conftest import EXAMPLE

    ex, out = str(EXAMPLE), str(tmp_path)
    code = f"""
from popgen.cli import main
common = ["--cluster", "none", "--device", "cpu", "--no-progress"]
for args in (["qc", "--bfile", {ex!r}, "--hwe", "1e-6", "--out", {out!r} + "/q"],
             ["ld-prune", "--bfile", {ex!r}, "--indep-pairwise", "50", "5", "0.2", "--out", {out!r} + "/l"],
             ["king", "--bfile", {ex!r}, "--king-cutoff", "0.0884", "--out", {out!r} + "/k"],
             ["pca", "--bfile", {ex!r}, "--n-pcs", "4", "--no-plot", "--out", {out!r} + "/p"],
             ["pca", "--bfile", {ex!r}, "--n-pcs", "4", "--approx", "--no-plot", "--out", {out!r} + "/r"],
             ["gwas", "--bfile", {ex!r}, "--pheno", {ex!r} + ".pheno", "--covar", {ex!r} + ".covar",
              "--no-plots", "--out", {out!r} + "/g"]):
    assert main(args + common) == 0, args
"""
    cache = tmp_path / "numba-cache"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))

    def cache_files():
        return {p: p.stat().st_mtime_ns for p in cache.rglob("*.nb[ic]")}

    def run():
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env)
        assert res.returncode == 0, res.stderr[-3000:]

    run()  # compiles every kernel the commands use
    before = cache_files()
    assert before
    run()
    after = cache_files()
    assert sorted(set(after) - set(before)) == []
    assert [p for p in before if after.get(p) != before[p]] == []


def test_command_exits_without_teardown_but_complete(bfile, tmp_path):
    """The popgen command ends with os._exit after closing the log (cli._exit): outputs and the
    log are complete, exit codes kept, buffered output flushed; under a profiler it exits
    normally, so that the profile is written."""
    out = tmp_path / "o"
    res = popgen("qc", "--bfile", bfile, "--out", out, "--cluster", "none", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "timings:" in res.stdout + res.stderr  # the last line the run prints
    assert (tmp_path / "o.log").read_text().splitlines()[-1].split(" INFO ")[-1].startswith("timings:")
    assert sorted(p.name for p in tmp_path.glob("o.*")) == ["o.afreq", "o.hardy", "o.het", "o.log", "o.smiss",
                                                            "o.vmiss"]
    assert_one_line_error(popgen("qc", "--bfile", tmp_path / "missing", "--out", out), "missing")
    prof = tmp_path / "cli.prof"
    res = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "popgen", "--version"],
                         capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0 and prof.stat().st_size > 0 and "popgen" in res.stdout


def test_qc_writes_reports_and_log(bfile, tmp_path):
    out = tmp_path / "res" / "o"
    assert main(["qc", "--bfile", str(bfile), "--out", str(out), "--cluster", "none", "--device", "cpu",
                 "--maf", "0.05", "--make-bed", "--chunk-variants", "16", "--chunk-samples", "16"]) == 0
    for ext in ("afreq", "hardy", "vmiss", "smiss", "bed", "bim", "fam", "log"):
        assert (out.parent / f"o.{ext}").is_file(), ext
    log = (out.parent / "o.log").read_text()
    for word in ("popgen qc", "versions:", "numpy", "device: cpu", "cluster:", "timings:", "--maf: removed"):
        assert word in log, word
    assert not list(out.parent.glob(".*tmp*"))


@pytest.mark.parametrize("damage", ["truncate", "magic", "fam"])
def test_bad_plink_input_exit_2_no_output(bfile, tmp_path, damage):
    bed = bfile.with_suffix(".bed")
    if damage == "truncate":
        bed.write_bytes(bed.read_bytes()[:-1])
        culprit = bed
    elif damage == "magic":
        bed.write_bytes(b"BAD" + bed.read_bytes()[3:])
        culprit = bed
    else:
        fam = bfile.with_suffix(".fam")
        fam.write_text(fam.read_text() + "x y 0 0 1 -9\n")
        culprit = bed
    out = tmp_path / "o"
    res = popgen("qc", "--bfile", bfile, "--out", out, "--cluster", "none")
    assert_one_line_error(res, culprit)
    assert not (tmp_path / "o.afreq").exists()


def test_missing_input_file(tmp_path):
    res = popgen("qc", "--bfile", tmp_path / "nope", "--out", tmp_path / "o", "--cluster", "none")
    assert_one_line_error(res, tmp_path / "nope.bed", "file not found")


def test_unreadable_vcf(tmp_path):
    vcf = tmp_path / "bad.vcf"
    vcf.write_bytes(b"\x00\x01garbage\x02" * 50)
    res = popgen("qc", "--vcf", vcf, "--out", tmp_path / "o", "--cluster", "none")
    assert_one_line_error(res, vcf)


def test_keep_with_unknown_ids(bfile, tmp_path):
    keep = tmp_path / "keep.txt"
    keep.write_text("nobody1\nnobody2\n")
    res = popgen("qc", "--bfile", bfile, "--keep", keep, "--out", tmp_path / "o", "--cluster", "none")
    assert_one_line_error(res, keep, "none of the 2 sample IDs")


def test_gpu_without_gpu_is_an_error(bfile, tmp_path):
    from popgen.backend import gpu_status

    if gpu_status()[0]:
        pytest.skip("this host has a GPU")
    res = popgen("qc", "--bfile", bfile, "--out", tmp_path / "o", "--device", "gpu", "--cluster", "none")
    assert_one_line_error(res, "--device gpu requested but")


def test_bad_filter_value(bfile, tmp_path):
    res = popgen("qc", "--bfile", bfile, "--out", tmp_path / "o", "--maf", "0.7", "--cluster", "none")
    assert_one_line_error(res, "--maf")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("input: {bfile: x}\nout: o\nsteps: [{qc: {maf: high}}]\n", "steps.0.qc.maf" if False else "maf"),
        ("input: {bfile: x, vcf: y}\nout: o\nsteps: [{qc: {}}]\n", "exactly one of bfile, vcf, vcz"),
        ("input: {bfile: x}\nout: o\nsteps: [{pcaa: {}}]\n", "unknown step 'pcaa'"),
        ("input: {bfile: x}\nout: o\nsteps: [{qc: {}}]\nbogus: 1\n", "bogus"),
        ("input: [unclosed\n", "invalid YAML"),
        ("- just a list\n", "must be a mapping"),
    ],
)
def test_invalid_config(tmp_path, text, fragment):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    res = popgen("run", cfg)
    assert_one_line_error(res, cfg, fragment)


def test_run_config(bfile, tmp_path):
    cfg = tmp_path / "p.yaml"
    out = tmp_path / "r" / "x"
    (tmp_path / "sex.txt").write_text("#IID\tSEX\n" + "".join(f"s{j}\t{'MF'[j % 2]}\n" for j in range(40)))
    cfg.write_text(f"input: {{bfile: c}}\nout: {out}\ncluster: none\ndevice: cpu\nupdate_sex: sex.txt\n"  # beside it
                   "chunks: {variants: 16, samples: 16}\nsteps:\n  - qc: {geno: 0.1, make_bed: true}\n")
    res = popgen("run", cfg)
    assert res.returncode == 0, res.stderr
    assert (out.parent / "x.afreq").is_file() and (out.parent / "x.bed").is_file()
    assert [line.split()[4] for line in (out.parent / "x.fam").read_text().splitlines()[:3]] == ["1", "2", "1"]
    assert np.loadtxt(out.parent / "x.afreq", usecols=4, skiprows=1).shape == (60,)


def test_example_pipeline_runs(tmp_path):
    """The quickstart's pipeline (configs/example.yaml) end to end, in-process scheduler."""
    out = tmp_path / "ex" / "example"
    assert main(["run", str(REPO / "configs" / "example.yaml"), "--cluster", "none", "--device", "cpu",
                 "--out", str(out), "--no-progress"]) == 0
    for ext in ("afreq", "hardy", "vmiss", "smiss", "het", "bed", "prune.in", "prune.out", "eigenvec", "eigenval",
                "eigenvec.var", "pca.png", "log"):
        assert (out.parent / f"example.{ext}").is_file(), ext
    n_pruned = len((out.parent / "example.prune.in").read_text().split())
    vec = np.loadtxt(out.parent / "example.eigenvec", skiprows=1, usecols=(2, 3))
    pops = np.loadtxt(REPO / "popgen" / "data" / "example" / "example.pop", skiprows=1, usecols=2, dtype=str)
    fam = np.loadtxt(out.parent / "example.fam", usecols=1, dtype=str)
    all_ids = np.loadtxt(REPO / "popgen" / "data" / "example" / "example.pop", skiprows=1, usecols=1, dtype=str)
    pops = dict(zip(all_ids, pops))
    labels = np.array([pops[i] for i in fam])
    # PC1 separates POP3 from the others
    assert abs(vec[labels == "POP3", 0].mean() - vec[labels != "POP3", 0].mean()) > 5 * vec[:, 0].std() / 3
    assert "ld prune" in (out.parent / "example.log").read_text() and n_pruned > 100
    # the log's degree counts are those of the .kin0 table (filter 0.0442: every pair of 3rd degree or closer)
    kin = (out.parent / "example.kin0").read_text().splitlines()
    table = [line.split("\t")[-1] for line in kin[1:]]
    log_text = (out.parent / "example.log").read_text()
    for d, name in (("0", "duplicate/MZ"), ("1", "1st degree"), ("2", "2nd degree"), ("3", "3rd degree")):
        assert f"{name} pairs: {table.count(d)}" in log_text, name
    assert table.count("3") > 0


def test_bad_ci_level(bfile, tmp_path):
    res = popgen("gwas", "--bfile", bfile, "--pheno", tmp_path / "p.txt", "--out", tmp_path / "o", "--ci", "1.5",
                 "--cluster", "none")
    assert_one_line_error(res, "--ci")
    assert not list(tmp_path.glob("o.*"))
