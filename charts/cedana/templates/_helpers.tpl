{{/* The release's full name: the release name, or <release>-cedana when it lacks "cedana". */}}
{{- define "cedana.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The labels that select the DaemonSet's pods. */}}
{{- define "cedana.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The labels of every object. */}}
{{- define "cedana.labels" -}}
{{ include "cedana.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: node-agent
{{- end -}}

{{/* The ServiceAccount's name. */}}
{{- define "cedana.serviceAccountName" -}}
{{- default (include "cedana.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* The S3 Secret's name: the existing one, or the one the chart renders. */}}
{{- define "cedana.s3SecretName" -}}
{{- default (printf "%s-s3" (include "cedana.fullname" .)) .Values.s3.existingSecret -}}
{{- end -}}

{{/* The image reference. */}}
{{- define "cedana.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* config.json: .Values.config, with metrics.address when metrics are enabled. */}}
{{- define "cedana.configJSON" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- if .Values.metrics.enabled -}}
{{- $metrics := merge (dict "address" (printf ":%d" (int .Values.metrics.port))) (default (dict) $cfg.metrics) -}}
{{- $_ := set $cfg "metrics" $metrics -}}
{{- end -}}
{{- toPrettyJson $cfg -}}
{{- end -}}
