#!/usr/bin/env bash
# Run HERE (a machine with the package registry), in the repository root, before a GPU run:
# puts into .whl/ (git-ignored) the wheels a bare GPU machine lacks (Python 3.12, x86-64; its
# image has PyTorch, numpy, scipy, pandas, matplotlib, scikit-learn, pyyaml, jinja2, but not
# snakemake or POT), and Fashion-MNIST into data/ (`make data`). Both travel with the device
# tool's `carry: [".whl", "data"]`; profiles/gpu/run.sh installs them there.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
rm -rf .whl && mkdir -p .whl
plat=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64 manylinux_2_34_x86_64 manylinux_2_31_x86_64 manylinux_2_24_x86_64; do
    plat+=(--platform "$p")
done
# snakemake and POT with their dependencies, minus what the GPU image already has
"$PY" -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    "${plat[@]}" --platform any -d .whl snakemake==9.* pot
for have in numpy scipy pandas matplotlib torch nvidia triton pyyaml PyYAML jinja2 Jinja2 \
            MarkupSafe markupsafe pillow contourpy cycler fonttools kiwisolver pyparsing \
            python_dateutil six pytz tzdata packaging sympy mpmath networkx filelock fsspec \
            typing_extensions setuptools; do
    rm -f .whl/"$have"-*.whl .whl/"$have"_*.whl
done
ls .whl | wc -l | xargs echo "wheels:"; du -sh .whl
make data
