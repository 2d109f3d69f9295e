{{/* Names and labels shared by every template. */}}

{{- define "serre.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every object's name: the release name, with the chart name unless it contains it. */}}
{{- define "serre.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of the operator's objects (Deployment, ServiceAccount, RBAC, Service, PDB). */}}
{{- define "serre.operator.fullname" -}}
{{- printf "%s-operator" (include "serre.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The ClusterRole bound in every sandbox namespace; generated into
     templates/sandbox-editor-clusterrole.yaml by `serre-operator manifests`
     (crate constant build::EDITOR_CLUSTER_ROLE). */}}
{{- define "serre.editorClusterRole" -}}
serre-sandbox-editor
{{- end -}}

{{- define "serre.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Standard labels of every object of a component; call with (dict "ctx" $ "component" "operator"). */}}
{{- define "serre.labels" -}}
helm.sh/chart: {{ include "serre.chart" .ctx }}
{{ include "serre.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: serre
{{- end -}}

{{/* Labels that select a component's pods; never change them (Deployment selectors are immutable). */}}
{{- define "serre.selectorLabels" -}}
app.kubernetes.io/name: {{ include "serre.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "serre.operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Name of the gateway's objects (Deployment, ServiceAccount, RBAC, Service, PVC). */}}
{{- define "serre.gateway.fullname" -}}
{{- printf "%s-gateway" (include "serre.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "serre.gateway.image" -}}
{{- printf "%s:%s" .Values.gateway.image.repository (default .Chart.AppVersion .Values.gateway.image.tag) -}}
{{- end -}}

{{/* Gateway URL given to trial runs' init step: trialRuns.gatewayUrl, else the chart's
gateway Service when the gateway is deployed, else none (runs with grants then wait). */}}
{{- define "serre.trialRuns.gatewayUrl" -}}
{{- if .Values.trialRuns.gatewayUrl -}}
{{- .Values.trialRuns.gatewayUrl -}}
{{- else if .Values.gateway.enabled -}}
{{- printf "http://%s.%s.svc:%d" (include "serre.gateway.fullname" .) .Release.Namespace (int .Values.gateway.service.port) -}}
{{- end -}}
{{- end -}}

{{/* Image of trial runs' init step: trialRuns.fetchImage, else the gateway image. */}}
{{- define "serre.trialRuns.fetchImage" -}}
{{- default (include "serre.gateway.image" .) .Values.trialRuns.fetchImage -}}
{{- end -}}

{{/* The gateway keeps its database in SQLite (on a PVC) unless a database URL Secret is named. */}}
{{- define "serre.gateway.sqlite" -}}
{{- if not .Values.gateway.database.urlSecret.name -}}true{{- end -}}
{{- end -}}

{{/* ClusterRole bound to the gateway inside each sandbox namespace (trial runs). */}}
{{- define "serre.gateway.runsClusterRole" -}}
{{- printf "%s-runs" (include "serre.gateway.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
