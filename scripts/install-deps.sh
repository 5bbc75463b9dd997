#!/usr/bin/env bash
# Installs, from Debian's packages, whatever rectifier needs that is missing. Idempotent: apt-get runs only
# when a package is absent. usage: install-deps.sh [build|test|bench]   (each level includes the previous)
set -euo pipefail
level=${1:-build}
build=(g++ cmake make pkg-config libopenblas-openmp-dev libcli11-dev nlohmann-json3-dev zlib1g-dev
       libgtest-dev libbenchmark-dev libhwy-dev dataset-fashion-mnist)
# test: PyTorch checks the model files and the fixtures; Chromium opens the HTML report; libxml2-utils checks SVG.
test=(python3 python3-numpy python3-torch chromium libxml2-utils)
bench=(libdlib-dev libtorch-dev time)
want=("${build[@]}")
case $level in
  build) ;;
  test) want+=("${test[@]}") ;;
  bench) want+=("${test[@]}" "${bench[@]}") ;;
  *) echo "install-deps.sh: unknown level '$level' (build, test or bench)" >&2; exit 2 ;;
esac
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
