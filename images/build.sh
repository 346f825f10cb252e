#!/usr/bin/env bash
# Builds (and with --push, pushes) the pipeline images, tagged with the package version from
# pyproject.toml, and the MLflow server image of the gke-gpu overlay, tagged v<MLflow version>.
#   images/build.sh [--push] [--registry ghcr.io/twhin-bert]
set -euo pipefail
cd "$(dirname "$0")/.."
registry="ghcr.io/twhin-bert"
push=0
while [ $# -gt 0 ]; do
  case "$1" in
    --push) push=1 ;;
    --registry) registry="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
version=$(python3 -c "import tomllib;print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")
sha=$(git rev-parse HEAD 2>/dev/null || echo unknown)
for kind in cpu gpu; do
  tag="${registry}/twhin-bert-${kind}:${version}"
  docker build -f "images/Dockerfile.${kind}" --build-arg "VERSION=${version}" --build-arg "GIT_SHA=${sha}" -t "${tag}" .
  if [ "$push" = 1 ]; then docker push "${tag}"; fi
done
mlflow_version=$(sed -n 's/^ARG MLFLOW_VERSION=//p' images/Dockerfile.mlflow)
tag="${registry}/twhin-bert-mlflow:v${mlflow_version}"
docker build -f images/Dockerfile.mlflow -t "${tag}" images
if [ "$push" = 1 ]; then docker push "${tag}"; fi
