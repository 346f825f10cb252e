#!/usr/bin/env bash
# Builds (and with --push, pushes) the pipeline images tagged <version>-<12-hex commit>, and the
# MLflow server image of the gke-gpu overlay, tagged v<MLflow version>.
#   images/build.sh [--push] [--registry ghcr.io/twhin-bert]
# It writes components/twhin_bert/_build_info.py (git-ignored): the images carry it, and a
# pipeline compiled from this checkout afterwards names exactly these tags
# (twhin_bert.common.kfp_utils.image_tag). A tree with uncommitted changes is refused: its
# commit would not describe the image.
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
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "images/build.sh: uncommitted changes; commit them first (the tag names the commit)" >&2
  exit 1
fi
version=$(python3 -c "import tomllib;print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")
sha=$(git rev-parse HEAD)
tag="${version}-$(git rev-parse --short=12 HEAD)"
printf '"""Written by images/build.sh: the tag of the images built from this checkout."""\n\nIMAGE_TAG = "%s"\nGIT_SHA = "%s"\n' \
  "${tag}" "${sha}" > components/twhin_bert/_build_info.py
for kind in cpu gpu; do
  image="${registry}/twhin-bert-${kind}:${tag}"
  docker build -f "images/Dockerfile.${kind}" --build-arg "VERSION=${version}" \
    --build-arg "GIT_SHA=${sha}" --build-arg "IMAGE_TAG=${tag}" -t "${image}" .
  if [ "$push" = 1 ]; then docker push "${image}"; fi
done
mlflow_version=$(sed -n 's/^ARG MLFLOW_VERSION=//p' images/Dockerfile.mlflow)
image="${registry}/twhin-bert-mlflow:v${mlflow_version}"
docker build -f images/Dockerfile.mlflow -t "${image}" .
if [ "$push" = 1 ]; then docker push "${image}"; fi
echo "built tag ${tag} (compile with this checkout, or TWHIN_BERT_IMAGE_TAG=${tag})"
