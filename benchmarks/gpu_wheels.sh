#!/usr/bin/env bash
# Download the wheels that the GPU machine lacks (MONAI, captum, nibabel, nilearn; it has torch,
# Lightning, numpy, scipy, scikit-learn, pandas, matplotlib, tqdm, joblib, lxml, requests) into
# .whl/ (git-ignored), for its Python 3.12 on x86-64 Linux, at the versions installed here.
# All four are pure-Python wheels. See the docstring of benchmarks/bench_gpu.py for the launch.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
pkgs=()
for name in monai captum nibabel nilearn; do
  pkgs+=("$name==$("$py" -c "from importlib.metadata import version; print(version('$name'))")")
done
rm -rf .whl
mkdir -p .whl
"$py" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d .whl "${pkgs[@]}"
ls -l .whl
du -sh .whl
