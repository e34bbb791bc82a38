{{/* Chart name, truncated to the 63 characters of a label value. */}}
{{- define "kubatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's resources. */}}
{{- define "kubatch.fullname" -}}
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

{{- define "kubatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every resource carries. */}}
{{- define "kubatch.labels" -}}
helm.sh/chart: {{ include "kubatch.chart" . }}
{{ include "kubatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubatch
{{- end }}

{{/* Labels that select the operator pod (immutable in a Deployment: keep them minimal). */}}
{{- define "kubatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kubatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kubatch.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Labels that select the AWS Batch API pods (never the operator's pod, nor the reverse). */}}
{{- define "kubatch.batchApiSelectorLabels" -}}
app.kubernetes.io/name: {{ include "kubatch.name" . }}-batch-api
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kubatch.batchApiServiceAccountName" -}}
{{- if .Values.batchApi.serviceAccount.create }}
{{- default (printf "%s-batch-api" (include "kubatch.fullname" .)) .Values.batchApi.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.batchApi.serviceAccount.name }}
{{- end }}
{{- end }}
