#!/usr/bin/env bash
# Build the local control plane's binaries (and Kueue, the queueing controller the Kueue tests install) from the Go module proxy, at the versions pinned in
# versions.env, into $TESTBIN (default .testbin/bin). Each binary is skipped when it is already built at
# its pinned version, and the Go build cache is reused, so a re-run takes seconds.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
bin="${TESTBIN:-$root/.testbin/bin}"
mkdir -p "$bin"
export CGO_ENABLED=0 GOFLAGS=-mod=mod

say() { printf '[testbin %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# A stamp file beside each binary records the version it was built at.
built() { [[ -x "$bin/$1" && "$(cat "$bin/.$1.version" 2>/dev/null)" == "$2" ]]; }
stamp() { echo "$2" >"$bin/.$1.version"; }

build_kubernetes() {
  local cmds=(kube-apiserver kube-controller-manager kube-scheduler kubectl) missing=()
  for c in "${cmds[@]}"; do built "$c" "$KUBE_VERSION" || missing+=("$c"); done
  ((${#missing[@]})) || { say "kubernetes $KUBE_VERSION: up to date"; return; }
  local mod="$here/kubernetes"
  if ! grep -q "k8s.io/kubernetes $KUBE_VERSION" "$mod/go.mod" 2>/dev/null; then
    say "generating $mod/go.mod for k8s.io/kubernetes $KUBE_VERSION"
    "$here/gen-kube-gomod.sh" >"$mod/go.mod.new" && mv "$mod/go.mod.new" "$mod/go.mod"
    rm -f "$mod/go.sum"
  fi
  local major minor v="$KUBE_VERSION"
  major="${v#v}"; major="${major%%.*}"; minor="${v#v*.}"; minor="${minor%%.*}"
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$v -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    ld+=" -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  say "building ${missing[*]} from k8s.io/kubernetes $v (cold: about 5-10 minutes on 2 cores)"
  local pkgs=()
  for c in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  (cd "$mod" && go build -ldflags "$ld" -o "$bin/" "${pkgs[@]}")
  for c in "${missing[@]}"; do stamp "$c" "$KUBE_VERSION"; done
  say "kubernetes $v: built"
}

build_etcd() {
  built etcd "$ETCD_VERSION" && { say "etcd $ETCD_VERSION: up to date"; return; }
  say "building etcd $ETCD_VERSION"
  local mod="$here/etcd"
  sed -i "s#go.etcd.io/etcd/server/v3 v[0-9.]*#go.etcd.io/etcd/server/v3 $ETCD_VERSION#" "$mod/go.mod"
  (cd "$mod" && go build -ldflags "-s -w" -o "$bin/etcd" .)
  stamp etcd "$ETCD_VERSION"
}

build_go_install() {  # name, package@version, version, extra ldflags
  built "$1" "$3" && { say "$1 $3: up to date"; return; }
  say "building $1 $3"
  GOBIN="$bin" GOFLAGS= go install -ldflags "-s -w ${4:-}" "$2"
  stamp "$1" "$3"
}

build_etcd
build_go_install kwok "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "$KWOK_VERSION" \
  "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
build_go_install kwokctl "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION" "$KWOK_VERSION" \
  "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
build_go_install helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" "$HELM_VERSION" \
  "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
build_go_install kueue "sigs.k8s.io/kueue/cmd/kueue@$KUEUE_VERSION" "$KUEUE_VERSION"
build_kubernetes
say "all binaries in $bin"
