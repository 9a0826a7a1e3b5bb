#!/usr/bin/env bash
# Start (`up`) or remove (`down`) the local control plane: kwokctl's binary runtime with the binaries
# built by testbin.sh (every path given, so kwokctl downloads nothing), on 127.0.0.1, plus fake GPU nodes.
# The kubeconfig lands in .cluster/kubeconfig. `up` reuses a running cluster.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${TESTBIN:-$root/.testbin/bin}"
state="$root/.cluster"
name="${FTJOB_CLUSTER_NAME:-finetune}"
kubeconfig="$state/kubeconfig"
export PATH="$bin:$PATH" KWOK_WORKDIR="$state/kwok"

say() { printf '[cluster] %s\n' "$*"; }
kc() { kubectl --kubeconfig "$kubeconfig" "$@"; }

# kwokctl's built-in pod stages complete a pod at once. kwok's "general" pod stages (from the kwok module
# that testbin.sh downloaded) honour a delay per pod (annotation pod-complete.stage.kwok.x-k8s.io/delay,
# default 1s + up to 5s jitter); giving any stage replaces all defaults, so the node stages come too.
RUNNER_ANNOTATION=podrunner.finetune.dev/run
stages_config() {
  source "$here/versions.env"
  local kwok_src
  kwok_src="$(GOFLAGS= go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  cat "$here/kwokctl.yaml"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/general/pod-create.yaml pod/general/pod-init-container-running.yaml \
    pod/general/pod-init-container-completed.yaml pod/general/pod-ready.yaml \
    pod/general/pod-complete.yaml pod/general/pod-delete.yaml; do
    printf -- '---\n'
    if [[ $f == pod/general/pod-complete.yaml ]]; then
      # Pods the test harness's pod runner runs (tests/cluster/podrunner.py) end when their process does.
      sed "s|^    matchExpressions:|    matchExpressions:\n    - key: '.metadata.annotations[\"$RUNNER_ANNOTATION\"]'\n      operator: 'DoesNotExist'|" \
        "$kwok_src/kustomize/stage/$f"
    else
      cat "$kwok_src/kustomize/stage/$f"
    fi
  done
}

healthy() { [[ -f "$kubeconfig" ]] && kc get --raw /readyz >/dev/null 2>&1; }

up() {
  mkdir -p "$state"
  if healthy; then
    say "reusing the running cluster ($kubeconfig)"
  else
    # A stopped or half-made cluster from an earlier run is removed first.
    kwokctl delete cluster --name "$name" >/dev/null 2>&1 || true
    say "starting kwokctl cluster '$name' (binary runtime, 127.0.0.1)"
    stages_config >"$state/kwokctl.yaml"
    kwokctl create cluster --name "$name" --runtime binary \
      --config "$state/kwokctl.yaml" \
      --kubeconfig "$kubeconfig" \
      --etcd-binary "$bin/etcd" \
      --kube-apiserver-binary "$bin/kube-apiserver" \
      --kube-controller-manager-binary "$bin/kube-controller-manager" \
      --kube-scheduler-binary "$bin/kube-scheduler" \
      --kwok-controller-binary "$bin/kwok" \
      --wait 120s --timeout 180s
  fi
  kc apply -f "$here/nodes.yaml" >/dev/null
  # A Node's status is kept on create, so the GPU capacity in nodes.yaml is what the scheduler sees.
  kc wait --for=condition=Ready node --all --timeout=120s >/dev/null
  say "ready: $(kc get nodes --no-headers | wc -l) nodes; export KUBECONFIG=$kubeconfig"
}

down() {
  if [[ -d "$state/kwok" ]]; then
    kwokctl delete cluster --name "$name" || true
  fi
  rm -rf "$state"
  say "removed"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
