#!/usr/bin/env bash
# popgen developer entry point: sets everything up from a fresh clone, then runs.
#
#   ./run.sh example    set up, then run the example pipeline on the bundled cohort
#   ./run.sh test       set up (with test tools and plink2), then run the test suite
#   ./run.sh test-gpu   set up with the gpu extra, then run the CPU-vs-GPU tests (pytest -m gpu)
#   ./run.sh setup      only create .venv and install popgen into it
#
# Needs only python3 and, for the tests, apt-get (plink2 is installed from Debian).
# POPGEN_VENV overrides the virtualenv location (default .venv).
set -euo pipefail
cd "$(dirname "$0")"
VENV="${POPGEN_VENV:-.venv}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "run.sh: need root (or sudo) to run: $*" >&2; return 1; fi; }

apt_install() {  # apt_install PKG... : install Debian packages that are missing
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || { echo "run.sh: please install ${missing[*]} with your package manager" >&2; return 1; }
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
}

setup() {  # setup EXTRAS  (e.g. "" or "test,gpu")
  local extras="$1"
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv && rm -rf "$VENV" && python3 -m venv "$VENV"; }
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    extras="${extras:+$extras,}gpu"
  fi
  # one pip command for the base set and all extras, so that they resolve together
  "$VENV/bin/python" -m pip install -q -e ".${extras:+[$extras]}"
}

cores() { python3 -c 'import os; print(len(os.sched_getaffinity(0)))'; }

case "${1:-}" in
  example)
    setup ""
    "$VENV/bin/popgen" run configs/example.yaml "${@:2}"
    echo "results in results/example/: QC reports (.afreq .hardy .vmiss .smiss .het), filtered cohort (.bed), LD prune lists, KING (.kin0 .king.cutoff.in.id), PCA (.eigenvec .pca.png), GWAS (.QT.glm.linear .BT.glm.logistic.hybrid, GWAS-SSF .ssf.tsv with -meta.yaml, plots), example.log"
    ;;
  test)
    apt_install plink2 libopenblas0-pthread  # plink2 on OpenBLAS, as the benchmarks compare against
    setup "test,gpu"
    n=$(cores)
    if [ "$n" -gt 1 ]; then par=(-n "$n"); else par=(); fi
    "$VENV/bin/python" -m pytest "${par[@]}" "${@:2}"
    ;;
  test-gpu)
    setup "test,gpu"
    "$VENV/bin/python" -m pytest -m gpu "${@:2}"
    ;;
  setup)
    setup "${2:-}"
    ;;
  *)
    sed -n '2,12p' "$0"
    exit 2
    ;;
esac
