{{/* The admission webhook and the instance catalogue: names, arguments, ports and volumes of
     the operator container (included by deployment.yaml). */}}

{{- define "kubatch.webhookSecret" -}}
{{- default (printf "%s-webhook-tls" (include "kubatch.fullname" .)) .Values.webhook.secretName }}
{{- end }}

{{- define "kubatch.webhookService" -}}
{{- printf "%s-webhook" (include "kubatch.fullname" .) }}
{{- end }}

{{- define "kubatch.webhookArgs" -}}
{{- if .Values.webhook.enabled }}
- --webhook-port={{ .Values.webhook.port }}
- --webhook-addr={{ .Values.webhook.bindAddress }}
- --webhook-configuration={{ include "kubatch.fullname" . }}
{{- if .Values.webhook.url }}
- --webhook-url={{ .Values.webhook.url }}
{{- else }}
- --webhook-service={{ include "kubatch.webhookService" . }}
{{- end }}
{{- if .Values.webhook.certManager.enabled }}
- --webhook-cert-dir=/etc/kubatch/webhook
{{- else }}
- --webhook-secret={{ include "kubatch.webhookSecret" . }}
- --webhook-namespace={{ .Release.Namespace }}
{{- end }}
{{- end }}
{{- if or .Values.catalogue.instanceTypes .Values.catalogue.replace }}
- --catalogue=/etc/kubatch/catalogue/catalogue.yaml
{{- end }}
{{- end }}

{{- define "kubatch.webhookPorts" -}}
{{- if .Values.webhook.enabled }}
- name: webhook
  containerPort: {{ .Values.webhook.port }}
  protocol: TCP
{{- end }}
{{- end }}

{{- define "kubatch.extraMounts" -}}
{{- if and .Values.webhook.enabled .Values.webhook.certManager.enabled }}
- name: webhook-tls
  mountPath: /etc/kubatch/webhook
  readOnly: true
{{- end }}
{{- if or .Values.catalogue.instanceTypes .Values.catalogue.replace }}
- name: catalogue
  mountPath: /etc/kubatch/catalogue
  readOnly: true
{{- end }}
{{- end }}

{{- define "kubatch.extraVolumes" -}}
{{- if and .Values.webhook.enabled .Values.webhook.certManager.enabled }}
- name: webhook-tls
  secret:
    secretName: {{ include "kubatch.webhookSecret" . }}
{{- end }}
{{- if or .Values.catalogue.instanceTypes .Values.catalogue.replace }}
- name: catalogue
  configMap:
    name: {{ include "kubatch.fullname" . }}-catalogue
{{- end }}
{{- end }}

{{/* Restart the operator when what it reads only at start changes (the catalogue). */}}
{{- define "kubatch.podChecksums" -}}
checksum/catalogue: {{ dict "replace" .Values.catalogue.replace "instanceTypes" .Values.catalogue.instanceTypes | toYaml | sha256sum | trunc 16 | quote }}
{{- end }}
