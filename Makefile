# finetune-operator. Every target is idempotent: re-running skips work already done.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
ROOT := $(abspath .)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
TESTBIN := $(ROOT)/.testbin/bin
export PATH := $(TESTBIN):$(VENV)/bin:$(PATH)
export KUBECONFIG ?= $(ROOT)/.cluster/kubeconfig

.PHONY: help setup test test-fast lint crds testbin cluster-up cluster-down demo demo-down gguf-tools chart images kind-up kind-down bench clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# torch is pinned and installed first so no later package pulls another build.
$(VENV)/.setup-done: pyproject.toml
	@echo "[setup] creating $(VENV) and installing finetune-operator[operator,training,dev]"
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q --progress-bar off torch==2.13.0
	@$(PY) -m pip install -q --progress-bar off -e '.[operator,training,dev]'
	@touch $@
	@echo "[setup] done"

setup: $(VENV)/.setup-done  ## Create .venv with the project and all extras

testbin:  ## Build etcd, kube-*, kubectl, kwok, kwokctl, helm from the Go module proxy (cached)
	@tests/cluster/testbin.sh

cluster-up: testbin  ## Start the local control plane with fake GPU nodes (reuses a running one)
	@tests/cluster/cluster.sh up

cluster-down:  ## Remove the local control plane
	@tests/cluster/cluster.sh down

crds: setup  ## Regenerate crds/ (and the chart's copy) from the pydantic API models
	@$(PY) -m finetune_operator.api.crd crds/

lint: setup  ## ruff + mypy + import-linter's layering contracts (pyproject.toml)
	@$(VENV)/bin/ruff check operator training tests benchmarks
	@$(VENV)/bin/ruff format --check operator training tests benchmarks
	@$(VENV)/bin/mypy
	@$(VENV)/bin/lint-imports --no-logo

test: setup testbin gguf-tools  ## Lint, then every test (unit, integration, e2e); starts what they need
	@$(MAKE) --no-print-directory lint
	@$(PY) -m pytest tests

test-fast: setup  ## Unit tests only (no cluster, no training)
	@$(PY) -m pytest tests/unit -m 'not slow and not cluster'

gguf-tools:  ## Build llama.cpp's converter and llama-quantize from the llama-cpp-python sdist (cached)
	@PYTHON=$(PY) training/gguf-tools.sh

chart: crds  ## Copy the generated CRDs into the Helm chart
	@mkdir -p charts/finetune-operator/crds
	@cp crds/*.yaml charts/finetune-operator/crds/

demo: setup testbin gguf-tools  ## The whole pipeline on a tiny model: cluster, Hub stand-in, operator, one FineTuneJob
	@$(PY) -m tests.demo

demo-down:  ## Stop what `make demo` left running
	@$(PY) -m tests.demo --down

bench: setup  ## Run the CPU benchmarks (dataset validation; SFT throughput smoke run)
	@$(PY) benchmarks/validate_parquet.py
	@$(PY) benchmarks/sft_throughput.py --tiny

IMAGE_REPO ?= ghcr.io/finetune-operator
IMAGE_TAG ?= 0.1.0
export IMAGE_REPO IMAGE_TAG
images:  ## Build the operator and trainer images and check each one starts (Docker, else buildah on a Debian base)
	@images/build.sh all

KIND_CLUSTER ?= finetune
kind-up: images chart  ## kind cluster + images loaded + helm install (needs Docker and kind)
	kind get clusters | grep -qx $(KIND_CLUSTER) || kind create cluster --name $(KIND_CLUSTER)
	kind load docker-image --name $(KIND_CLUSTER) $(IMAGE_REPO)/operator:$(IMAGE_TAG) $(IMAGE_REPO)/trainer:$(IMAGE_TAG)
	helm upgrade --install finetune-operator charts/finetune-operator -n finetune-system --create-namespace \
	  --kube-context kind-$(KIND_CLUSTER) --set image.tag=$(IMAGE_TAG) --wait

kind-down:  ## Delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

clean: cluster-down  ## Remove the cluster state (keeps .venv, .testbin and .cache)
	@rm -rf .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
