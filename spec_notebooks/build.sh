#!/usr/bin/env bash
# Regenerate every spec notebook from its jupytext source (NN_*.py) and store it executed.
# Run after changing a source or the kernels; commit both files. Usage: bash spec_notebooks/build.sh [NN]
set -euo pipefail
cd "$(dirname "$0")"
for src in ${1:-[0-9][0-9]}_*.py; do
  nb="${src%.py}.ipynb"
  jupytext --quiet --to ipynb --set-kernel python3 "$src" -o "$nb"
  jupyter nbconvert --log-level WARN --to notebook --execute --inplace "$nb"
  echo "executed $nb"
done
