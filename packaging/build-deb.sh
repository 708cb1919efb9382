#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the Debian package crm-capture_VERSION_amd64.deb.
#
#   packaging/build-deb.sh [--workdir DIR] [OUTDIR]
#
# The design card keeps debian/ out of the top level, so this copies the tree
# (the files git tracks, plus new ones it does not ignore; every file when the
# tree is no git checkout) to DIR/crm-capture-VERSION, lays packaging/debian
# at that copy's root and runs `dpkg-buildpackage -b -us -uc` there. The .deb
# (and the .buildinfo and .changes) are copied to OUTDIR (default: the current
# directory) and the path of the .deb is the last line printed.
#
# DIR defaults to a fresh temporary directory, removed at exit; a DIR given is
# kept (a fixed DIR lets a compiler cache hit on the next build). Only the two
# programs and the man pages are built (debian/rules turns tests and
# benchmarks off). DEB_BUILD_OPTIONS defaults to "parallel=2 nocheck noddebs";
# CMAKE_CXX_COMPILER_LAUNCHER=ccache in the environment is honoured by CMake.
# Needs: dpkg-dev, debhelper, fakeroot and the build dependencies
# (packaging/install-deps.sh installs them all).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
workdir=""
outdir=$PWD
while [ $# -gt 0 ]; do
  case "$1" in
    --workdir) workdir=$2; shift 2 ;;
    -h|--help) sed -n '3,20p' "$0"; exit 0 ;;
    -*) echo "build-deb: unknown option $1" >&2; exit 100 ;;
    *) outdir=$1; shift ;;
  esac
done
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

version=$(dpkg-parsechangelog -l "$here/debian/changelog" -S Version)
project_version=$(sed -n 's/^project(crm-capture VERSION \([0-9.]*\).*/\1/p' "$top/CMakeLists.txt")
if [ "${version%%-*}" != "$project_version" ]; then
  echo "build-deb: debian/changelog says $version, CMakeLists.txt's project() $project_version" >&2
  exit 1
fi

if [ -z "$workdir" ]; then
  workdir=$(mktemp -d)
  trap 'rm -rf "$workdir"' EXIT
fi
mkdir -p "$workdir"
workdir=$(cd "$workdir" && pwd)
src=$workdir/crm-capture-$version
rm -rf "$src" "$workdir"/crm-capture_"$version"_*
mkdir -p "$src"

if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # Deleted but not yet committed files are listed and missing: skipped.
  (cd "$top" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf -) | tar -xf - -C "$src"
else
  (cd "$top" && tar --exclude='./build*' --exclude='./obj-*' -cf - .) | tar -xf - -C "$src"
fi
cp -a "$here/debian" "$src/debian"

export DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-parallel=2 nocheck noddebs}
echo "build-deb: dpkg-buildpackage -b -us -uc in $src (DEB_BUILD_OPTIONS=$DEB_BUILD_OPTIONS)"
(cd "$src" && dpkg-buildpackage -b -us -uc)

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb=crm-capture_"$version"_"$arch".deb
for f in "$deb" crm-capture_"$version"_"$arch".buildinfo crm-capture_"$version"_"$arch".changes; do
  cp "$workdir/$f" "$outdir/"
done
echo "$outdir/$deb"
