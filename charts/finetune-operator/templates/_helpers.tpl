{{/* Chart name, truncated to the 63 characters a label allows. */}}
{{- define "finetune-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, plus the chart name unless the release name already holds it. */}}
{{- define "finetune-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "finetune-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "finetune-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "finetune-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "finetune-operator.labels" -}}
helm.sh/chart: {{ include "finetune-operator.chart" . }}
{{ include "finetune-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: finetune-operator
{{- end }}

{{- define "finetune-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "finetune-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "finetune-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The operator's configuration file: values.config with the metrics port the Service exposes. */}}
{{- define "finetune-operator.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $_ := set $cfg "metrics_port" (int .Values.metrics.port) }}
{{- toYaml $cfg }}
{{- end }}

{{/*
Rules on namespaced resources: what reconciling a FineTuneJob needs, no more. Used by the ClusterRole
(cluster-wide mode) or by each watched namespace's Role.
*/}}
{{- define "finetune-operator.namespacedRules" -}}
# The resource: watched; patched in metadata only for the finalizer, which a job whose work is outside
# the cluster (HF Jobs, Local) takes before submission and kopf releases after cancelling it; the status
# writer reads it fresh when the watch's copy is older than its last write.
- apiGroups: [finetune.dev]
  resources: [finetunejobs]
  verbs: [get, list, watch, patch]
# The operator writes status only, never spec, so GitOps diffs stay clean.
- apiGroups: [finetune.dev]
  resources: [finetunejobs/status]
  verbs: [patch]
# Kubernetes backend: one batch Job per training attempt, deleted on cancel; watched (an index of the
# operator's own Jobs: a poll reads no API, and a change wakes the job), else read with get.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [create, get, list, watch, delete]
# A run over several nodes: a headless Service names each node's pod, so all meet at node 0 (owned by the
# FineTuneJob, garbage-collected with it).
- apiGroups: [""]
  resources: [services]
  verbs: [create]
# Kueue (when jobs name a queue): its Workload says why a queued training Job waits, its LocalQueue which
# ClusterQueue's quota it waits for (read only).
- apiGroups: [kueue.x-k8s.io]
  resources: [workloads]
  verbs: [list]
- apiGroups: [kueue.x-k8s.io]
  resources: [localqueues]
  verbs: [get]
# Why a training pod waits (the scheduler's message), its log stream (progress lines), and the GPUs
# pods hold (watched: planning counts free GPUs from it instead of listing pods per plan).
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
# Events on FineTuneJobs (kopf posts core v1 events).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# The Hugging Face token named by a job's tokenSecretRef (or the default Secret): read, never listed.
# Create: each training attempt's event-signing key, a Secret owned by the FineTuneJob.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create]
{{- end }}
