#!/usr/bin/env bash
# Re-resolves every digest-pinned base image of images/Dockerfile.* to the registry's current
# digest for its tag and rewrites the FROM lines (then review the diff, rebuild, commit).
#   images/pin-bases.sh          # rewrite in place
#   images/pin-bases.sh --check  # only report bases whose tag now points elsewhere (exit 1)
# Needs `crane` (go-containerregistry) or `docker buildx imagetools`.
set -euo pipefail
cd "$(dirname "$0")"
check=0
[ "${1:-}" = "--check" ] && check=1
digest() {
  if command -v crane > /dev/null; then
    crane digest "$1"
  else
    docker buildx imagetools inspect "$1" --format '{{json .Manifest}}' \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])'
  fi
}
stale=0
for file in Dockerfile.*; do
  grep -oE '^FROM [^ ]+@sha256:[0-9a-f]{64}' "$file" | cut -d' ' -f2 | sort -u | while read -r ref; do
    image="${ref%@*}"
    old="${ref#*@}"
    new="$(digest "$image")"
    if [ "$old" != "$new" ]; then
      echo "$file: $image $old -> $new"
      if [ "$check" = 1 ]; then exit 1; fi
      sed -i "s|${image}@${old}|${image}@${new}|g" "$file"
    fi
  done || stale=1
done
exit "$stale"
