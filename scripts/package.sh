#!/usr/bin/env bash
# package.sh [OUTDIR] — build pxed's Debian package with pure Go tooling
# (nfpm, run with `go run` at a pinned version; no dpkg-buildpackage) into
# OUTDIR (default: the repository root). Prints the .deb's path.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath "${1:-.}")
GO=${GO:-go}
NFPM=${NFPM:-github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0}
# Debian version: the last tag, else 0.0~git<date>.<commit> (sorts before any 0.1 tag).
# Outside a git checkout: 0.0~dev.
if tag=$(git describe --tags --abbrev=0 2>/dev/null); then
	VERSION=${tag#v}
elif commit=$(git log -1 --format=%cd.%h --date=format:%Y%m%d 2>/dev/null); then
	VERSION="0.0~git$commit"
else
	VERSION="0.0~dev"
fi
export VERSION
mkdir -p .cache/package "$out"
CGO_ENABLED=0 $GO build -trimpath -ldflags "-s -w" -o .cache/package/pxed ./cmd/pxed
deb="$out/pxed_${VERSION}-1_amd64.deb"
$GO run "$NFPM" package --config packaging/nfpm.yaml --packager deb --target "$deb" >&2
echo "$deb"
