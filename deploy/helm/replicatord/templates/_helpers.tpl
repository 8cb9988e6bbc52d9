{{/* Names and labels. */}}
{{- define "replicatord.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "replicatord.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "replicatord.selectorLabels" -}}
app.kubernetes.io/name: {{ include "replicatord.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "replicatord.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "replicatord.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "replicatord.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "replicatord.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The API is on TCP (with TLS) or on the unix socket in the pod. */}}
{{- define "replicatord.tcp" -}}
{{- if .Values.grpc.tls.secretName -}}true{{- end -}}
{{- end -}}

{{/*
Checks of values that would render a chart the daemon refuses, or one that
corrupts the store. Every template includes this, so helm template and
helm install fail with the reason.
*/}}
{{- define "replicatord.validate" -}}
{{- if not (has .Values.store.backend (list "bbolt" "etcd")) -}}
{{- fail (printf "store.backend %q is not supported: bbolt or etcd" .Values.store.backend) -}}
{{- end -}}
{{- $replicas := int (include "replicatord.replicas" .) -}}
{{- if and (eq .Values.store.backend "bbolt") (gt $replicas 1) -}}
{{- fail (printf "replicas: %d with store.backend bbolt: the bbolt store is one file that one daemon holds locked; run 1 replica, or use store.backend etcd" $replicas) -}}
{{- end -}}
{{- if lt $replicas 0 -}}
{{- fail "replicas must not be negative" -}}
{{- end -}}
{{- if eq .Values.store.backend "etcd" -}}
{{- if not .Values.store.etcd.endpoints -}}
{{- fail "store.backend etcd needs store.etcd.endpoints (the etcd cluster's client URLs)" -}}
{{- end -}}
{{- if and .Values.store.etcd.insecure .Values.store.etcd.tlsSecretName -}}
{{- fail "store.etcd.insecure turns TLS off, and store.etcd.tlsSecretName is set: choose one" -}}
{{- end -}}
{{- if and .Values.store.etcd.clientCertificate (not .Values.store.etcd.tlsSecretName) -}}
{{- fail "store.etcd.clientCertificate needs store.etcd.tlsSecretName (the Secret with tls.crt and tls.key)" -}}
{{- end -}}
{{- end -}}
{{- if hasKey .Values.config "daemon" -}}
{{- fail "config.daemon is set by the chart (data dir, listeners, log): use log.*, grpc.* and metrics.* instead" -}}
{{- end -}}
{{- if and .Values.grpc.tokens.secretName (not .Values.grpc.tls.secretName) -}}
{{- fail "grpc.tokens.secretName needs grpc.tls.secretName: bearer tokens are never sent over plain TCP, and the unix socket needs none" -}}
{{- end -}}
{{- if and .Values.grpc.tls.clientCA (not .Values.grpc.tls.secretName) -}}
{{- fail "grpc.tls.clientCA needs grpc.tls.secretName" -}}
{{- end -}}
{{- if and .Values.rrsa.roleArn (not .Values.rrsa.oidcProviderArn) -}}
{{- fail "rrsa.roleArn needs rrsa.oidcProviderArn (both, or neither and rrsa.roleName for the webhook)" -}}
{{- end -}}
{{- if and .Values.rrsa.oidcProviderArn (not .Values.rrsa.roleArn) -}}
{{- fail "rrsa.oidcProviderArn needs rrsa.roleArn" -}}
{{- end -}}
{{- if and .Values.credentials.secretName (or .Values.rrsa.roleName .Values.rrsa.roleArn) -}}
{{- fail "credentials.secretName and rrsa.* both set: choose one (RRSA needs no access key; to assume a role with an access key, set ALIBABA_CLOUD_ROLE_ARN in extraEnv)" -}}
{{- end -}}
{{- if eq (int .Values.grpc.port) (int .Values.metrics.port) -}}
{{- fail "grpc.port and metrics.port must differ" -}}
{{- end -}}
{{- end -}}

{{/* Replicas: as set, else 1 for bbolt and 3 for etcd. */}}
{{- define "replicatord.replicas" -}}
{{- if kindIs "invalid" .Values.replicas -}}
{{- if eq .Values.store.backend "etcd" -}}3{{- else -}}1{{- end -}}
{{- else -}}
{{- .Values.replicas -}}
{{- end -}}
{{- end -}}

{{/* The etcd store is in use. */}}
{{- define "replicatord.etcd" -}}
{{- if eq .Values.store.backend "etcd" -}}true{{- end -}}
{{- end -}}
