{{/* Object storage (values: storage.*), included by operator-deployment.yaml only when
     storage.enabled. The RBAC it needs is in operator-role.yaml and
     operator-clusterrole.yaml, in their "Object storage" blocks. */}}

{{/* Directory of the Garage admin token volume, and the token file in it. */}}
{{- define "serre.storage.tokenDir" -}}
/var/run/serre/garage
{{- end -}}

{{- define "serre.storage.tokenFile" -}}
{{- printf "%s/admin-token" (include "serre.storage.tokenDir" .) -}}
{{- end -}}

{{/* Environment of the operator container (StorageConfig flags). */}}
{{- define "serre.storage.env" -}}
{{- $st := .Values.storage -}}
- name: SERRE_GARAGE_ADMIN_ENDPOINT
  value: {{ $st.garageAdminEndpoint | quote }}
- name: SERRE_GARAGE_ADMIN_TOKEN_FILE
  value: {{ include "serre.storage.tokenFile" . | quote }}
- name: SERRE_S3_ENDPOINT
  value: {{ $st.s3Endpoint | quote }}
- name: SERRE_S3_REGION
  value: {{ $st.s3Region | quote }}
- name: SERRE_STORAGE_KEYS_SECRET
  value: {{ $st.keysSecret | quote }}
- name: SERRE_STORAGE_DATA_KEYS_SECRET
  value: {{ $st.dataKeysSecret | quote }}
{{- end -}}

{{- define "serre.storage.volumeMounts" -}}
- name: garage-admin-token
  mountPath: {{ include "serre.storage.tokenDir" . }}
  readOnly: true
{{- end -}}

{{/* The token entry of storage.adminTokenSecret, as file admin-token, readable by the
     operator's group only (pod fsGroup 65532). A missing Secret or entry keeps the pod
     in ContainerCreating with an Event naming it. */}}
{{- define "serre.storage.volumes" -}}
- name: garage-admin-token
  secret:
    secretName: {{ .Values.storage.adminTokenSecret.name }}
    defaultMode: 288  # 0440: owner and group read
    items:
      - key: {{ .Values.storage.adminTokenSecret.key }}
        path: admin-token
{{- end -}}
