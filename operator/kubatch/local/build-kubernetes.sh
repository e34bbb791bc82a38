#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kube-scheduler and kubectl (Kubernetes 1.20.2) from
# Debian bookworm's *source* package, which carries the full upstream tree including vendor/;
# on request also the kubelet (static, CGO off) and the pause program of build/pause (gcc -static).
# Usage: build-kubernetes.sh OUT_DIR [WHAT...]   (WHAT: the names above, kubelet, pause)
# The unpacked source tree stays in OUT_DIR/.build (re-fetched when missing) for later targets.
# Facts behind each step: ../../../docs/decisions/0002-local-control-plane.md
set -euo pipefail
out=${1:?usage: build-kubernetes.sh OUT_DIR [WHAT...]}
shift
whats=("$@")
[ ${#whats[@]} -gt 0 ] || whats=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=${KUBATCH_BUILD_DIR:-$out/.build}
mkdir -p "$work"
say() { printf '[kubatch build %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[kubatch build] ERROR: %s\n' "$*" >&2; exit 1; }

need_pkgs=()
command -v go >/dev/null 2>&1 || need_pkgs+=(golang-go)
[ -d /usr/share/gocode/src/github.com/modern-go/reflect2 ] || need_pkgs+=(golang-github-modern-go-reflect2-dev)
command -v dpkg-source >/dev/null 2>&1 || need_pkgs+=(dpkg-dev)
command -v rsync >/dev/null 2>&1 || need_pkgs+=(rsync)
if [[ " ${whats[*]} " == *" pause "* ]]; then
  command -v gcc >/dev/null 2>&1 || need_pkgs+=(gcc)
  [ -f /usr/include/signal.h ] || need_pkgs+=(libc6-dev)
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_pkgs[*]}"
  [ "$(id -u)" = 0 ] || die "need root to apt-get install ${need_pkgs[*]} (or install them yourself, or set KUBEBUILDER_ASSETS to existing binaries)"
  apt-get update -qq || die "apt-get update failed: check the apt sources of this machine"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${need_pkgs[@]}" >/dev/null \
    || die "apt-get install ${need_pkgs[*]} failed"
fi

# A private apt directory with a deb-src line derived from this machine's own apt sources,
# so /etc is left untouched and no mirror host is written down here.
aptdir=$work/apt
mkdir -p "$aptdir/lists/partial"
src_list=$aptdir/sources.list
uri=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  uri=$(awk '/^URIs:/ {print $2; exit}' "$f")
  [ -n "$uri" ] && break
done
if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
  uri=$(awk '$1=="deb" && $0 !~ /security/ {for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
fi
[ -n "$uri" ] || die "could not find a Debian mirror in /etc/apt/sources*; add one or set KUBEBUILDER_ASSETS"
echo "deb-src $uri bookworm main" > "$src_list"
aptopts=(-o "Dir::Etc::SourceList=$src_list" -o "Dir::Etc::SourceParts=/dev/null" -o "Dir::State::Lists=$aptdir/lists")

srcdir=$(ls -d "$work"/kubernetes-1.20*/ 2>/dev/null | head -1 || true)
if [ -z "$srcdir" ]; then
  say "fetching the Debian source package 'kubernetes' (about 30 MB)"
  apt-get "${aptopts[@]}" update -qq || die "apt-get update of the deb-src list failed"
  (cd "$work" && apt-get "${aptopts[@]}" source --download-only kubernetes >/dev/null) || die "apt-get source kubernetes failed"
  say "unpacking"
  (cd "$work" && dpkg-source --no-check -x kubernetes_*.dsc >/dev/null) || die "dpkg-source failed"
  srcdir=$(ls -d "$work"/kubernetes-1.20*/ | head -1)
fi
srcdir=${srcdir%/}
say "source tree: $srcdir"

# reflect2 1.0.1 (vendored) breaks on Go >= 1.18: use Debian's 1.0.2 files.
r2=$srcdir/vendor/github.com/modern-go/reflect2
rm -f "$r2"/*.go "$r2"/*.s
cp -f /usr/share/gocode/src/github.com/modern-go/reflect2/*.go /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$r2/"

cd "$srcdir"
for what in "${whats[@]}"; do
  if [ -x "$out/$what" ]; then say "$what already built"; continue; fi
  if [ "$what" = pause ]; then
    # The pod sandbox's pause program, exactly as build/pause/Makefile compiles it.
    say "building pause from build/pause/linux/pause.c"
    gcc -Os -Wall -Werror -static -DVERSION=v3.4-kubatch -o "$out/pause.tmp" build/pause/linux/pause.c \
      || die "compiling pause.c failed"
    mv "$out/pause.tmp" "$out/pause"
    say "built $out/pause"
    continue
  fi
  say "building $what (cold: ~3.5 min for kube-apiserver or the kubelet, ~40 s for the others on 2 cores)"
  GOFLAGS= GO111MODULE=off GOPROXY=off CGO_ENABLED=0 KUBE_STATIC_OVERRIDES="$what" \
    make WHAT="cmd/$what" >"$work/build-$what.log" 2>&1 \
    || { tail -30 "$work/build-$what.log" >&2; die "building $what failed; full log: $work/build-$what.log"; }
  bin=$(find _output -type f -name "$what" -perm -u+x | head -1)
  [ -n "$bin" ] || die "build of $what produced no binary"
  cp "$bin" "$out/$what.tmp" && mv "$out/$what.tmp" "$out/$what"
  say "built $out/$what"
done
rm -rf "$srcdir/_output"
say "done: $out"
