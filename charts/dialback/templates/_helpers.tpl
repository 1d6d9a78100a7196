{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "dialback.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, prefixed with the chart name unless it holds it. */}}
{{- define "dialback.fullname" -}}
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

{{- define "dialback.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "dialback.labels" -}}
helm.sh/chart: {{ include "dialback.chart" . }}
app.kubernetes.io/name: {{ include "dialback.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "dialback.imageTag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dialback
{{- end }}

{{/* Selector of the server pods; migration and test pods carry another component. */}}
{{- define "dialback.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dialback.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "dialback.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dialback.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "dialback.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion | toString }}
{{- end }}

{{- define "dialback.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "dialback.imageTag" .) }}
{{- end }}

{{/* One env entry reading a secret key; args: dict "root" $ "env" NAME "ref" .Values.secrets.x */}}
{{- define "dialback.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .ref.existingSecret | default .root.Values.secrets.existingSecret | default (include "dialback.fullname" .root) }}
      key: {{ .ref.key }}
      optional: {{ .ref.optional }}
{{- end }}

{{/* The secret-backed DIALBACK_* variables, shared by the Deployment and the migration Job. */}}
{{- define "dialback.secretEnvs" -}}
{{- $s := .Values.secrets }}
{{ include "dialback.secretEnv" (dict "root" . "env" "DIALBACK_DATABASE_URL" "ref" $s.databaseUrl) }}
{{ include "dialback.secretEnv" (dict "root" . "env" "DIALBACK_REDIS_URL" "ref" $s.redisUrl) }}
{{ include "dialback.secretEnv" (dict "root" . "env" "DIALBACK_ROUTING_REDIS_URL" "ref" $s.routingRedisUrl) }}
{{ include "dialback.secretEnv" (dict "root" . "env" "DIALBACK_ADMIN_TOKENS" "ref" $s.adminTokens) }}
{{ include "dialback.secretEnv" (dict "root" . "env" "DIALBACK_DEMO_API_KEY" "ref" $s.demoApiKey) }}
{{ include "dialback.secretEnv" (dict "root" . "env" "DIALBACK_ERASURE_HASH_KEY" "ref" $s.erasureHashKey) }}
{{ include "dialback.secretEnv" (dict "root" . "env" "DIALBACK_SESSION_SECRET" "ref" $s.sessionSecret) }}
{{ include "dialback.secretEnv" (dict "root" . "env" "DIALBACK_DEMO_ADMIN_PASSWORD" "ref" $s.demoAdminPassword) }}
{{ include "dialback.secretEnv" (dict "root" . "env" "DIALBACK_OIDC_CLIENT_SECRET" "ref" $s.oidcClientSecret) }}
{{- end }}

{{/* prometheus.io/* scrape annotations (pod template and internal Service). */}}
{{- define "dialback.scrapeAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.ports.internal | quote }}
prometheus.io/path: /metrics
{{- end }}

{{/* The pod security context of the chart, shared by all pods it creates. */}}
{{- define "dialback.podSecurity" -}}
{{- with .Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
