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

{{/* The sandbox policy admission webhook (webhook.*): its Service, its certificate
     Secret (release namespace) and its ValidatingWebhookConfiguration (cluster). */}}
{{- define "serre.webhook.service" -}}
{{- printf "%s-webhook" (include "serre.operator.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "serre.webhook.clientCA" -}}
{{- printf "%s-webhook-client-ca" (include "serre.operator.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "serre.webhook.secret" -}}
{{- printf "%s-webhook-tls" (include "serre.operator.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{/* A map of labels as key=value,key=value (sorted). */}}
{{- define "serre.webhook.selector" -}}
{{- $pairs := list -}}
{{- range $k, $v := . -}}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}
{{- define "serre.webhook.configuration" -}}
{{- printf "%s-sandbox-policy" (include "serre.fullname" .) | trunc 63 | trimSuffix "-" -}}
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

{{/* An image reference from a values block {repository, tag, digest}: repo:tag, where
     tag defaults to the chart's appVersion; with a digest, repo@digest (tag left empty)
     or repo:tag@digest (tag set: the runtime pulls by digest, the tag is informative).
     Call with (dict "image" .Values.image "ctx" $). */}}
{{- define "serre.imageRef" -}}
{{- $img := .image -}}
{{- if $img.digest -}}
{{- if $img.tag -}}
{{- printf "%s:%s@%s" $img.repository $img.tag $img.digest -}}
{{- else -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- end -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .ctx.Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{- define "serre.operator.image" -}}
{{- include "serre.imageRef" (dict "image" .Values.image "ctx" .) -}}
{{- end -}}

{{/* Name of the gateway's objects (Deployment, ServiceAccount, RBAC, Service, PVC). */}}
{{- define "serre.gateway.fullname" -}}
{{- printf "%s-gateway" (include "serre.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "serre.gateway.image" -}}
{{- include "serre.imageRef" (dict "image" .Values.gateway.image "ctx" .) -}}
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

{{/* The gateway pods' selector labels as "k=v,k=v" (SERRE_GATEWAY_POD_SELECTOR). */}}
{{- define "serre.gateway.podSelector" -}}
{{- $labels := include "serre.selectorLabels" (dict "ctx" . "component" "gateway") | fromYaml -}}
{{- $pairs := list -}}
{{- range $k := keys $labels | sortAlpha -}}
{{- $pairs = append $pairs (printf "%s=%s" $k (index $labels $k)) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/* Private CA bundle (caBundle): ConfigMap name, mount directory, and the pieces a
     pod spec needs. Each piece renders nothing when caBundle is "". The images set
     SSL_CERT_FILE (the Mozilla bundle); SSL_CERT_DIR adds every file of the directory
     (rustls-native-certs reads both). */}}
{{- define "serre.ca.name" -}}
{{- printf "%s-ca" (include "serre.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "serre.ca.dir" -}}
/etc/serre/ca
{{- end -}}

{{- define "serre.ca.env" -}}
{{- if .Values.caBundle -}}
- name: SSL_CERT_DIR
  value: {{ include "serre.ca.dir" . | quote }}
{{- end -}}
{{- end -}}

{{- define "serre.ca.volumeMount" -}}
{{- if .Values.caBundle -}}
- name: ca-bundle
  mountPath: {{ include "serre.ca.dir" . }}
  readOnly: true
{{- end -}}
{{- end -}}

{{- define "serre.ca.volume" -}}
{{- if .Values.caBundle -}}
- name: ca-bundle
  configMap:
    name: {{ include "serre.ca.name" . }}
{{- end -}}
{{- end -}}

{{/* Annotation rolling the pods when the CA bundle changes (a mounted ConfigMap is
     updated in place, but the processes read it once at start). */}}
{{- define "serre.ca.checksum" -}}
{{- if .Values.caBundle -}}
checksum/ca-bundle: {{ .Values.caBundle | sha256sum }}
{{- end -}}
{{- end -}}

{{/* Name of the key-creating install hook's objects (ServiceAccount, Role, Job). */}}
{{- define "serre.keys.fullname" -}}
{{- printf "%s-keys" (include "serre.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The restricted container securityContext of the key hook's containers. */}}
{{- define "serre.keys.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
runAsNonRoot: true
runAsUser: 65532
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
