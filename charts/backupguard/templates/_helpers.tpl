{{/* The name of every object: backupguard unless fullnameOverride says otherwise. */}}
{{- define "backupguard.fullname" -}}
{{- default "backupguard" .Values.fullnameOverride | trunc 53 | trimSuffix "-" -}}
{{- end -}}

{{/* Selects backupguard's pods; the same label manifests/ uses, so selectors match either install. */}}
{{- define "backupguard.selectorLabels" -}}
app.kubernetes.io/name: backupguard
{{- end -}}

{{- define "backupguard.labels" -}}
{{ include "backupguard.selectorLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "backupguard.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "backupguard.longhornNamespace" -}}
{{- (.Values.config.longhorn | default dict).namespace | default "longhorn-system" -}}
{{- end -}}

{{/* The namespaces no webhook is called for: the control plane's and backupguard's own. */}}
{{- define "backupguard.namespaceSelector" -}}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: ["kube-system", {{ .Release.Namespace | quote }}]
{{- end -}}

{{/*
The chart-managed certificate (certificate.provider: helm): the Secret's as it is in the cluster, so
an upgrade keeps it, else a new CA and a certificate it signs. Computed once per render and kept in
.Values, so the Secret and the webhook configurations' caBundle agree.
*/}}
{{- define "backupguard.helmCertificate" -}}
{{- if not (hasKey .Values "generatedCertificate") -}}
{{- $fullname := include "backupguard.fullname" . -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (printf "%s-webhook-tls" $fullname) -}}
{{- if and $secret (index ($secret.data | default dict) "ca.crt") -}}
{{- $_ := set .Values "generatedCertificate" (dict "ca" (index $secret.data "ca.crt") "cert" (index $secret.data "tls.crt") "key" (index $secret.data "tls.key")) -}}
{{- else -}}
{{- $service := printf "%s-webhook.%s.svc" $fullname .Release.Namespace -}}
{{- $ca := genCA (printf "%s-ca" $fullname) (int .Values.certificate.validityDays) -}}
{{- $cert := genSignedCert $service nil (list $service (printf "%s.cluster.local" $service)) (int .Values.certificate.validityDays) $ca -}}
{{- $_ := set .Values "generatedCertificate" (dict "ca" ($ca.Cert | b64enc) "cert" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* What a webhook's clientConfig and the configuration's metadata need for the CA, by provider. */}}
{{- define "backupguard.caBundle" -}}
{{- if eq .Values.certificate.provider "helm" -}}
{{- include "backupguard.helmCertificate" . -}}
caBundle: {{ .Values.generatedCertificate.ca }}
{{- end -}}
{{- end -}}

{{- define "backupguard.webhookAnnotations" -}}
{{- if eq .Values.certificate.provider "cert-manager" -}}
annotations:
  cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/{{ include "backupguard.fullname" . }}-webhook
{{- end -}}
{{- end -}}

{{/* The pod's and the container's security settings, shared by serve and the uninstall Job. */}}
{{- define "backupguard.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}
{{- define "backupguard.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}
