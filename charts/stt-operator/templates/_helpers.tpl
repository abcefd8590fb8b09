{{/* The operator's ServiceAccount. */}}
{{- define "stt-operator.serviceAccount" -}}
{{- default .Release.Name .Values.serviceAccount.name -}}
{{- end -}}

{{/* Cluster-scoped objects are named <release>-<namespace>: two releases never collide. */}}
{{- define "stt-operator.clusterName" -}}
{{- printf "%s-%s" .Release.Name .Release.Namespace | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "stt-operator.labels" -}}
app.kubernetes.io/name: stt-operator
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
{{- end -}}

{{- define "stt-operator.subject" -}}
- kind: ServiceAccount
  name: {{ include "stt-operator.serviceAccount" . | quote }}
  namespace: {{ .Release.Namespace | quote }}
{{- end -}}

{{/*
What the operator does in a namespace it watches, and nothing more (docs/operator.md, "RBAC"):
kopf lists and watches SttServers and patches them (bookkeeping annotations, and removing the
finalizer earlier versions of the operator put on); the
reconciler reads them, patches their status and writes the children; `update` on
sttservers/finalizers lets it set blockOwnerDeletion under OwnerReferencesPermissionEnforcement;
the autoscaler lists pods, reads the control-token Secret and patches Deployments; both post Events.
*/}}
{{- define "stt-operator.namespacedRules" -}}
- apiGroups: [sttfleet.io]
  resources: [sttservers]
  verbs: [get, list, watch, patch]
- apiGroups: [sttfleet.io]
  resources: [sttservers/status]
  verbs: [patch]
- apiGroups: [sttfleet.io]
  resources: [sttservers/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors, prometheusrules, alertmanagerconfigs]
  verbs: [get, list, watch, create, patch, delete]
# spec.networkPolicy: listed on every pass (an unwanted one is deleted) and watched for drift.
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{/* The operator's arguments for the namespaces it serves. */}}
{{- define "stt-operator.scopeArgs" -}}
{{- if .Values.watchNamespaces }}
{{- range .Values.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- else }}
- --all-namespaces
{{- end }}
{{- end -}}
