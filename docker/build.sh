#!/usr/bin/env bash
# Builds a statically linked `stampede` and the image stampede:dev from it (docker/Dockerfile.prebuilt),
# with no base image to pull. The build context is a temporary directory holding only the binary and
# a few files, so it stays a few MB whatever lies in the repository.
#
#   docker/build.sh                     # cargo build (static) + docker build -t stampede:dev
#   STAMPEDE_IMAGE=stampede:1 docker/build.sh
#   STAMPEDE_BINARY=path/to/static/stampede docker/build.sh    # skip cargo, use this binary
#   STAMPEDE_REVISION=$(git rev-parse HEAD) docker/build.sh    # fills org.opencontainers.image.revision
#
# The static build goes to CARGO_TARGET_DIR if set, else ~/.cache/stampede-ci/target, so it is
# reused between runs. It uses --target <host triple>, so it never clobbers target/release.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
image="${STAMPEDE_IMAGE:-stampede:dev}"
cache="${STAMPEDE_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stampede-ci}"

if [[ -n "${STAMPEDE_BINARY:-}" ]]; then
  bin="$STAMPEDE_BINARY"
else
  triple="$(rustc -vV | sed -n 's/^host: //p')"
  target_dir="${CARGO_TARGET_DIR:-$cache/target}"
  echo "== static build ($triple, +crt-static) into $target_dir"
  # --target keeps RUSTFLAGS off build scripts and proc macros, and the output in target/<triple>/.
  RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR="$target_dir" \
    cargo build --release --locked --target "$triple" -p stampede-coordinator \
    --manifest-path "$repo/Cargo.toml"
  bin="$target_dir/$triple/release/stampede"
fi

# A scratch image has no loader and no libc: refuse anything dynamically linked.
if readelf -lW "$bin" | grep -q 'INTERP' || readelf -dW "$bin" | grep -q '(NEEDED)'; then
  echo "error: $bin is dynamically linked; a FROM scratch image needs a static binary" >&2
  exit 1
fi

ctx="$(mktemp -d "${TMPDIR:-/tmp}/stampede-image.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/etc" "$ctx/rootfs/report" "$ctx/rootfs/tmp"
chmod 0755 "$ctx/rootfs/report"
chmod 1777 "$ctx/rootfs/tmp"
printf 'stampede:x:65532:65532:stampede:/report:/sbin/nologin\n' >"$ctx/rootfs/etc/passwd"
printf 'stampede:x:65532:\n' >"$ctx/rootfs/etc/group"
if command -v strip >/dev/null 2>&1; then
  strip -o "$ctx/stampede" "$bin"
else
  cp "$bin" "$ctx/stampede"
fi
chmod 0755 "$ctx/stampede"
cp "$repo/docker/Dockerfile.prebuilt" "$ctx/Dockerfile"

version="$("$ctx/stampede" --version | awk '{print $2}')"
previous="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
echo "== docker build $image (stampede $version, $(du -h "$ctx/stampede" | cut -f1) binary)"
# The labels change only with the binary (created = its build time), so an unchanged binary
# rebuilds to the same image instead of a new one.
docker build --quiet -t "$image" \
  --build-arg VERSION="$version" \
  --build-arg REVISION="${STAMPEDE_REVISION:-unknown}" \
  --build-arg CREATED="$(date -u -r "$bin" +%Y-%m-%dT%H:%M:%SZ)" \
  "$ctx" >/dev/null
current="$(docker image inspect -f '{{.Id}}' "$image")"
if [[ -n "$previous" && "$previous" != "$current" ]]; then
  # The image this tag named before, now untagged: remove it unless something still uses it.
  docker rmi "$previous" >/dev/null 2>&1 || true
fi
docker image inspect -f '{{.Id}} {{.Config.User}} {{.Size}} bytes' "$image" | sed "s|^|$image |"
