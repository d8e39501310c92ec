{{/* Names: <release>-stampede, or the release name when it already contains the chart name. */}}
{{- define "stampede.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "stampede.fullname" -}}
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

{{/* A child object's name; fails rather than truncating, so two names never collide. */}}
{{- define "stampede.childName" -}}
{{- $name := printf "%s-%s" (include "stampede.fullname" .root) .suffix -}}
{{- if gt (len $name) 63 -}}
{{- fail (printf "the name %q is longer than 63 characters: shorten the release name or set fullnameOverride" $name) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{- define "stampede.coordinatorName" -}}
{{- include "stampede.childName" (dict "root" . "suffix" "coordinator") -}}
{{- end -}}

{{- define "stampede.targetName" -}}
{{- include "stampede.childName" (dict "root" . "suffix" "target") -}}
{{- end -}}

{{- define "stampede.scenarioConfigMapName" -}}
{{- if .Values.scenario.existingConfigMap -}}
{{- .Values.scenario.existingConfigMap -}}
{{- else -}}
{{- include "stampede.childName" (dict "root" . "suffix" "scenario") -}}
{{- end -}}
{{- end -}}

{{- define "stampede.scenarioKey" -}}
{{- if .Values.scenario.existingConfigMap -}}
{{- .Values.scenario.existingConfigMapKey -}}
{{- else -}}
scenario.yaml
{{- end -}}
{{- end -}}

{{- define "stampede.reportFile" -}}
{{- .Values.report.fileName | default (printf "%s-report.json" (include "stampede.fullname" .)) -}}
{{- end -}}

{{/* The URL agents dial. */}}
{{- define "stampede.coordinatorUrl" -}}
{{- if .Values.agents.coordinatorUrl -}}
{{- .Values.agents.coordinatorUrl -}}
{{- else if .Values.coordinator.enabled -}}
{{- printf "%s://%s:%d" (ternary "https" "http" .Values.tls.enabled) (include "stampede.coordinatorName" .) (int .Values.service.port) -}}
{{- else -}}
{{- fail "agents.coordinatorUrl: set it to the coordinator agents should join (coordinator.enabled is false, so this release has none)" -}}
{{- end -}}
{{- end -}}

{{- define "stampede.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "stampede.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stampede.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "stampede.labels" -}}
helm.sh/chart: {{ include "stampede.chart" . }}
{{ include "stampede.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: stampede
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "stampede.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* Pod-level settings shared by every pod. */}}
{{- define "stampede.podCommon" -}}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Checks that need more than the schema: unique region names, something to run. */}}
{{- define "stampede.checks" -}}
{{- $seen := dict -}}
{{- range .Values.regions -}}
{{- if hasKey $seen .name -}}
{{- fail (printf "regions: %q is listed twice" .name) -}}
{{- end -}}
{{- $_ := set $seen .name true -}}
{{- if and (hasKey . "weight") (hasKey . "rate") -}}
{{- fail (printf "regions: %q gives both a weight and a rate; give one" .name) -}}
{{- end -}}
{{- end -}}
{{- if and (not .Values.coordinator.enabled) (not .Values.agents.coordinatorUrl) -}}
{{- fail "agents.coordinatorUrl: set it to the coordinator agents should join (coordinator.enabled is false, so this release has none)" -}}
{{- end -}}
{{- include "stampede.securityChecks" . -}}
{{- end -}}

{{/* Plain text only when asked for by name; TLS settings that cannot work are refused. */}}
{{- define "stampede.securityChecks" -}}
{{- if and .Values.tls.enabled .Values.insecurePlaintext -}}
{{- fail "insecurePlaintext: true contradicts tls.enabled: true; set one of them" -}}
{{- end -}}
{{- if not (or .Values.tls.enabled .Values.insecurePlaintext) -}}
{{- fail "tls.enabled is false, so agents and coordinator would talk plain text: set tls.enabled=true (with tls.secretName, or let the chart make a certificate), or insecurePlaintext=true on a private network or behind TLS that ends elsewhere" -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) (not .Values.coordinator.enabled) -}}
{{- fail "tls.secretName: agents-only installs need the Secret (ca.crt, tls.crt, tls.key) whose CA the coordinator trusts; a certificate made here would be refused" -}}
{{- end -}}
{{- if and .Values.agents.allowAnyTarget .Values.agents.allowTargets -}}
{{- fail "agents.allowTargets and agents.allowAnyTarget: give one" -}}
{{- end -}}
{{- $_ := include "stampede.allowTargets" . -}}
{{- end -}}

{{/* The Secret with ca.crt, tls.crt and tls.key: the user's, or the one the chart makes. */}}
{{- define "stampede.tlsSecretName" -}}
{{- .Values.tls.secretName | default (include "stampede.childName" (dict "root" . "suffix" "tls")) -}}
{{- end -}}

{{/*
The targets agents may load, a comma list: agents.allowTargets, else the hosts of the inline
scenario's URLs. Empty with agents.allowAnyTarget.
*/}}
{{- define "stampede.allowTargets" -}}
{{- if .Values.agents.allowTargets -}}
{{- join "," .Values.agents.allowTargets -}}
{{- else if .Values.agents.allowAnyTarget -}}
{{- else if or .Values.scenario.existingConfigMap (not .Values.coordinator.enabled) -}}
{{- fail "agents.allowTargets: list the hosts or networks agents may load (HOST, *.SUFFIX, IP or CIDR), or set agents.allowAnyTarget=true; the chart takes them from the scenario only when it renders the scenario itself" -}}
{{- else -}}
{{- $s := include "stampede.scenario" . | fromYaml -}}
{{- $urls := list $s.target.url -}}
{{- range $_, $url := ($s.target.region_urls | default dict) -}}
{{- $urls = append $urls $url -}}
{{- end -}}
{{- $hosts := list -}}
{{- range $urls -}}
{{- $hosts = append $hosts (urlParse .).hostname -}}
{{- end -}}
{{- $hosts | uniq | join "," -}}
{{- end -}}
{{- end -}}

{{/* Where the Secrets are mounted. Not under /etc/stampede, where the scenario ConfigMap is. */}}
{{- define "stampede.tlsDir" -}}/etc/stampede-tls{{- end -}}
{{- define "stampede.tokenFile" -}}/etc/stampede-token/token{{- end -}}

{{/* TLS (or plain-text) and token flags; .role is coordinator or agent. */}}
{{- define "stampede.securityArgs" -}}
{{- $v := .root.Values -}}
{{- $dir := include "stampede.tlsDir" .root -}}
{{- if $v.tls.enabled }}
{{- if eq .role "coordinator" }}
- --tls-cert
- {{ $dir }}/tls.crt
- --tls-key
- {{ $dir }}/tls.key
- --tls-client-ca
- {{ $dir }}/ca.crt
{{- else }}
- --tls-ca
- {{ $dir }}/ca.crt
- --tls-cert
- {{ $dir }}/tls.crt
- --tls-key
- {{ $dir }}/tls.key
{{- with $v.tls.serverName }}
- --tls-server-name
- {{ . | quote }}
{{- end }}
{{- end }}
{{- else }}
- --insecure-plaintext
{{- end }}
{{- if $v.token.secretName }}
- --token-file
- {{ include "stampede.tokenFile" .root }}
{{- end }}
{{- end -}}

{{/* volumeMounts and volumes for the TLS and token Secrets (empty when neither is used). */}}
{{- define "stampede.securityMounts" -}}
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: {{ include "stampede.tlsDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.token.secretName }}
- name: token
  mountPath: {{ include "stampede.tokenFile" . | dir }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "stampede.securityVolumes" -}}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ include "stampede.tlsSecretName" . }}
    defaultMode: 0440
{{- end }}
{{- if .Values.token.secretName }}
- name: token
  secret:
    secretName: {{ .Values.token.secretName }}
    defaultMode: 0440
    items:
      - key: {{ .Values.token.key }}
        path: {{ include "stampede.tokenFile" . | base }}
{{- end }}
{{- end -}}

{{/*
The scenario file the coordinator reads: scenario.inline plus `regions` generated from .Values.regions
(agents = replicas), and the built-in target's URLs when target.url is empty.
*/}}
{{- define "stampede.scenario" -}}
{{- $s := deepCopy (.Values.scenario.inline | default dict) -}}
{{- if hasKey $s "regions" -}}
{{- fail "scenario.inline.regions: list regions under the top-level `regions` value (name, replicas, weight or rate); the chart generates the scenario's regions from it so that agents and scenario agree" -}}
{{- end -}}
{{- $target := deepCopy ($s.target | default dict) -}}
{{- $urls := deepCopy ($target.region_urls | default dict) -}}
{{- $builtin := false -}}
{{- if not $target.url -}}
{{- if not .Values.target.enabled -}}
{{- fail "scenario.inline.target.url: set the URL to load, or target.enabled=true to load the built-in target" -}}
{{- end -}}
{{- $builtin = true -}}
{{- $_ := set $target "url" (printf "http://%s:%d/" (include "stampede.targetName" .) (int .Values.target.port)) -}}
{{- end -}}
{{- $regions := list -}}
{{- range .Values.regions -}}
{{- $r := dict "name" .name "agents" (int .replicas) -}}
{{- if hasKey . "weight" -}}{{- $_ := set $r "weight" .weight -}}{{- end -}}
{{- if hasKey . "rate" -}}{{- $_ := set $r "rate" .rate -}}{{- end -}}
{{- $regions = append $regions $r -}}
{{- if .url -}}
{{- $_ := set $urls .name .url -}}
{{- else if and $builtin (not (hasKey $urls .name)) -}}
{{- $_ := set $urls .name (printf "%sregion/%s" $target.url .name) -}}
{{- end -}}
{{- end -}}
{{- if $urls -}}
{{- $_ := set $target "region_urls" $urls -}}
{{- end -}}
{{- $_ := set $s "target" $target -}}
{{- $_ := set $s "regions" $regions -}}
{{- toYaml $s -}}
{{- end -}}

{{/* A container's env: STAMPEDE_LOG and NO_COLOR (plain log lines), then .env; a name in .env replaces the default. */}}
{{- define "stampede.env" -}}
{{- $names := dict -}}
{{- range .env }}{{ $_ := set $names .name true }}{{ end -}}
{{- if not (hasKey $names "STAMPEDE_LOG") }}
- name: STAMPEDE_LOG
  value: {{ .root.Values.logLevel | quote }}
{{- end }}
{{- if not (hasKey $names "NO_COLOR") }}
- name: NO_COLOR
  value: "1"
{{- end }}
{{- with .env }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* NOTES.txt: how agents and coordinator trust each other, and what agents may load. */}}
{{- define "stampede.securityNotes" -}}
{{- if .Values.tls.enabled -}}
Transport: mTLS with Secret {{ include "stampede.tlsSecretName" . }}{{ if not .Values.tls.secretName }} (made by the chart for this release){{ end }}
{{- else -}}
WARNING: agents and coordinator talk PLAIN TEXT (insecurePlaintext=true)
{{- end }}{{ if .Values.token.secretName }}, and a token from Secret {{ .Values.token.secretName }}{{ end }}.
{{ if .Values.agents.allowAnyTarget -}}
WARNING: agents load any target the coordinator names (agents.allowAnyTarget=true).
{{- else -}}
Agents load only: {{ include "stampede.allowTargets" . | replace "," ", " }}.
{{- end }}
{{- end -}}
