#!/usr/bin/env bash
# Build the operator and trainer images, then check that each one's entry point runs.
#
#   images/build.sh [build|check|all]        (IMAGE_REPO, IMAGE_TAG name the images)
#
# With a Docker engine this is `docker build`. Without one (CI and the development machines), it is
# buildah with chroot isolation, and the base images come from Debian's own packages: debootstrap makes a
# bookworm root file system with Python 3.11, imported once as localhost/finetune-base:bookworm and reused.
# Package registries are reached from RUN steps through the host's CA bundle, mounted for the build only
# (never written into a layer). pip's wheel cache is a build cache mount, so a rebuild downloads nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE_REPO=${IMAGE_REPO:-ghcr.io/finetune-operator}
IMAGE_TAG=${IMAGE_TAG:-0.1.0}
OPERATOR_IMAGE=$IMAGE_REPO/operator:$IMAGE_TAG
TRAINER_IMAGE=$IMAGE_REPO/trainer:$IMAGE_TAG
BASE_IMAGE=localhost/finetune-base:bookworm
STAGE_CACHE=localhost/finetune-build-cache
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
action=${1:-all}

log() { echo "[images] $*"; }

if [ -z "${IMAGE_BUILDER:-}" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then IMAGE_BUILDER=docker; else IMAGE_BUILDER=buildah; fi
fi

debian_mirror() {
  # The mirror apt already uses here (deb822 or one-line sources), so debootstrap needs no other network.
  local uri
  uri=$(grep -hoE '^URIs: *\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1 | awk '{print $2}')
  [ -n "$uri" ] || uri=$(grep -hoE '^deb +\S+' /etc/apt/sources.list 2>/dev/null | grep -v security | head -1 | awk '{print $2}')
  echo "${uri:-http://deb.debian.org/debian}"
}

ensure_base() {
  if podman image exists "$BASE_IMAGE"; then return; fi
  local rootfs
  rootfs=$(mktemp -d /var/tmp/finetune-base.XXXXXX)
  log "making $BASE_IMAGE with debootstrap (Debian bookworm + python3, about 2 minutes)"
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$rootfs" "$(debian_mirror)" >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log"; exit 1; }
  # A base image carries no package lists (as the registries' images do): RUN steps `apt-get update` first.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
  tar -C "$rootfs" -c . | podman import --quiet --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs" "$rootfs.log"
}

build_one() {  # build_one NAME DOCKERFILE TAG LOCAL-BUILD-ARGS...
  local name=$1 dockerfile=$2 tag=$3
  shift 3
  local started=$SECONDS
  log "building $name image $tag ($IMAGE_BUILDER)"
  if [ "$IMAGE_BUILDER" = docker ]; then
    docker build -f "$dockerfile" -t "$tag" .
  else
    # --force-rm: a failed step's working container (holding whatever it had copied) goes with it.
    buildah bud --isolation=chroot --layers --force-rm --quiet \
      --volume "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro" \
      "$@" -f "$dockerfile" -t "$tag" . >/dev/null
  fi
  log "built $tag in $((SECONDS - started)) s"
}

build() {
  if [ "$IMAGE_BUILDER" = docker ]; then
    build_one operator images/operator/Dockerfile "$OPERATOR_IMAGE"
    build_one trainer images/trainer/Dockerfile "$TRAINER_IMAGE"
    return
  fi
  ensure_base
  make_room
  build_one operator images/operator/Dockerfile "$OPERATOR_IMAGE" --build-arg "PYTHON_IMAGE=$BASE_IMAGE"
  # No CUDA base here: the torch wheels bring their own CUDA libraries, so the image is complete but for
  # the driver, which a GPU node provides.
  local trainer_args=(--build-arg "BUILD_IMAGE=$BASE_IMAGE" --build-arg "CUDA_IMAGE=$BASE_IMAGE")
  # The builder stages get tags of their own, so the prune below never takes the layer cache that matters
  # (llama.cpp's compile, minutes; the installed dependencies, ~6 GB): only what a newer build replaced.
  local stage
  for stage in llama-cpp python; do
    build_one "trainer's $stage stage" images/trainer/Dockerfile "$STAGE_CACHE:trainer-$stage" \
      --target "$stage" "${trainer_args[@]}"
  done
  build_one trainer images/trainer/Dockerfile "$TRAINER_IMAGE" "${trainer_args[@]}"
  # The untagged layers that a dependency or source change left behind (the trainer's venv is ~6 GB): keep
  # the last few hours' and drop older ones, so repeated builds do not fill the disk.
  podman image prune --force --filter until=3h >/dev/null 2>&1 || true
}

free_gib() { df --output=avail -BG "$(podman info --format '{{.Store.GraphRoot}}')" | tail -1 | tr -dc 0-9; }

# A trainer build whose dependencies changed writes ~20 GB (the venv, its copy into the final stage, and
# the layer tarballs under /var/tmp). Below that, drop every image no tag needs (the layer cache included:
# the next build reinstalls from pip's cache) rather than fail half-way with "no space left on device".
NEEDED_GIB=${IMAGES_NEEDED_GIB:-20}
make_room() {
  local free
  free=$(free_gib)
  [ "${free:-0}" -ge "$NEEDED_GIB" ] && return
  log "only ${free} GiB free for image storage (a trainer build may need ${NEEDED_GIB}): removing untagged images and stopped build containers"
  buildah rm --all >/dev/null 2>&1 || true
  podman image prune --force >/dev/null 2>&1 || true
  free=$(free_gib)
  if [ "${free:-0}" -lt "$NEEDED_GIB" ]; then
    log "still only ${free} GiB free; trying anyway (set IMAGES_NEEDED_GIB to silence this)"
  fi
}

run_in() {  # run_in IMAGE COMMAND... : the image's own user, workdir and environment
  if [ "$IMAGE_BUILDER" = docker ]; then
    docker run --rm "$@"
  else
    # podman's default runtime cannot run on these machines (cgroup v1+v2); runc with the session's limits can.
    podman --runtime runc run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "$@"
  fi
}

check() {
  local out
  log "trainer: ftjob train --help"
  out=$(run_in "$TRAINER_IMAGE" ftjob train --help)
  grep -q -- '--plan' <<<"$out" || { echo "$out"; log "FAIL: the trainer's help names no --plan"; exit 1; }
  log "trainer: the GGUF tools and the training stack import"
  run_in "$TRAINER_IMAGE" sh -c 'test -x "$FTJOB_LLAMA_CPP/bin/llama-quantize" && python -c "import trl, peft, torch, finetune_training.runner, finetune_training.methods"'
  [ "$(run_in "$TRAINER_IMAGE" id -u)" = 10001 ] || { log "FAIL: the trainer does not run as uid 10001"; exit 1; }

  log "operator: kopf starts the operator, which stops for want of a cluster, saying so"
  local rc=0
  out=$(run_in "$OPERATOR_IMAGE" 2>&1) || rc=$?
  if [ "$rc" = 0 ] || ! grep -q "no Kubernetes credentials" <<<"$out"; then
    echo "$out" | tail -30; log "FAIL: the operator image did not reach its cluster login (exit $rc)"; exit 1
  fi
  [ "$(run_in --entrypoint id "$OPERATOR_IMAGE" -u)" = 10001 ] || { log "FAIL: the operator does not run as uid 10001"; exit 1; }
  log "both images start"
}

case $action in
  build) build ;;
  check) check ;;
  all) build; check ;;
  *) echo "usage: images/build.sh [build|check|all]" >&2; exit 2 ;;
esac
