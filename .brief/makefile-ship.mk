# For the lead to merge into Makefile (worker of issue 10). Uses the Makefile's existing ROOT, PATH export
# (.testbin/bin first, so helm is testbin's when built) and the `crds` target.

VERSION ?= 0.1.0
REGISTRY ?= ghcr.io/finetune-operator
OPERATOR_IMAGE ?= $(REGISTRY)/operator:$(VERSION)
TRAINER_IMAGE ?= $(REGISTRY)/trainer:$(VERSION)
KIND_CLUSTER ?= finetune
KIND_NAMESPACE ?= finetune-system
CHART := charts/finetune-operator

chart: crds  ## Copy crds/ into the chart (one source) and lint it
	@mkdir -p $(CHART)/crds
	@rm -f $(CHART)/crds/*.yaml
	@cp crds/*.yaml $(CHART)/crds/
	@helm lint --strict $(CHART)

images:  ## Build the operator and trainer images (needs Docker; REGISTRY, VERSION)
	docker build -f images/operator/Dockerfile -t $(OPERATOR_IMAGE) .
	docker build -f images/trainer/Dockerfile -t $(TRAINER_IMAGE) .

kind-up: images chart  ## A kind cluster with both images loaded and the chart installed (needs Docker, kind)
	@kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)' || kind create cluster --name $(KIND_CLUSTER) --wait 120s
	kind load docker-image --name $(KIND_CLUSTER) $(OPERATOR_IMAGE) $(TRAINER_IMAGE)
	helm upgrade --install finetune-operator $(CHART) \
	  --kube-context kind-$(KIND_CLUSTER) --namespace $(KIND_NAMESPACE) --create-namespace \
	  --set image.repository=$(REGISTRY)/operator --set image.tag=$(VERSION) --set image.pullPolicy=IfNotPresent \
	  --set config.trainer_image=$(TRAINER_IMAGE) \
	  --wait --timeout 5m
	@echo "kind cluster '$(KIND_CLUSTER)' is up: kubectl --context kind-$(KIND_CLUSTER) apply -f examples/jobs/sft-alpaca.yaml"

kind-down:  ## Delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)
