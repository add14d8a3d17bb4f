#!/usr/bin/env bash
# window_tree.sh DEST: copies this checkout to DEST as a GPU window receives it: the tracked files and the untracked
# ones git does not ignore, nothing else. No build/, no python/leanconv/lib, no extension: only the pack (.gpu/,
# carried beside) holds what was built. The dry runs of the GPU check and the training stage run in this copy, so
# whatever they need from an ignored path fails here first, not in a window.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=${1:?usage: benchmarks/gpu/window_tree.sh DEST}
rm -rf "$DEST"
mkdir -p "$DEST"
# -c lists tracked files deleted in the work tree too: a window gets only what exists.
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' path; do [ -e "$path" ] && printf '%s\0' "$path"; done \
  | tar --null -T - -cf - | tar -xf - -C "$DEST"
