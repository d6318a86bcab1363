{{/*
Name of the chart, or nameOverride.
*/}}
{{- define "flax.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every resource name: fullnameOverride, else the release name when it already
contains the chart name, else "<release>-<name>".
*/}}
{{- define "flax.fullname" -}}
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

{{/*
Labels that select the pods; they never change over the life of a release.
*/}}
{{- define "flax.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flax.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels on every resource.
*/}}
{{- define "flax.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "flax.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: flax
{{- end }}

{{/*
Name of the ServiceAccount the pods run as.
*/}}
{{- define "flax.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "flax.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The Flax image reference.
*/}}
{{- define "flax.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Directory the controller and the dataplane share for the dataplane's unix socket.
*/}}
{{- define "flax.socketDir" -}}/run/flax{{- end }}

{{/*
Name of the leader-election Lease. It must equal leaderElectionID in
cmd/flax-controller/main.go (charts/charttest checks it).
*/}}
{{- define "flax.leaderElectionID" -}}flax-controller-leader{{- end }}

{{/*
Path of the seccomp profile relative to the kubelet's seccomp directory.
*/}}
{{- define "flax.seccompProfilePath" -}}flax/io_uring.json{{- end }}

{{/*
"true" when the GatewayClass is rendered: gatewayClass.create is true, or it is "auto"
and the API server serves gateway.networking.k8s.io/v1 GatewayClass.
*/}}
{{- define "flax.createGatewayClass" -}}
{{- $create := toString .Values.gatewayClass.create }}
{{- if or (eq $create "true") (and (eq $create "auto") (.Capabilities.APIVersions.Has "gateway.networking.k8s.io/v1/GatewayClass")) -}}
true
{{- end }}
{{- end }}

{{/*
--gateway-node-selector for the controller: nodeSelector as "k=v,k2=v2" (keys sorted).
*/}}
{{- define "flax.gatewayNodeSelector" -}}
{{- $terms := list }}
{{- range $k, $v := .Values.nodeSelector }}
{{- $terms = append $terms (printf "%s=%s" $k $v) }}
{{- end }}
{{- join "," $terms }}
{{- end }}

{{/*
terminationGracePeriodSeconds: the value, or drain grace + drain timeout + 15 seconds.
*/}}
{{- define "flax.terminationGracePeriodSeconds" -}}
{{- $drain := add .Values.dataplane.drain.graceSeconds .Values.dataplane.drain.timeoutSeconds }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $drain 15 }}
{{- else }}
{{- .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/*
Checks across values that the schema cannot express. Fails the render with a message
naming the values to change.
*/}}
{{- define "flax.validate" -}}
{{- $u := .Values.updateStrategy }}
{{- if and (eq $u.type "RollingUpdate") (has (toString $u.maxUnavailable) (list "0" "0%")) (has (toString $u.maxSurge) (list "0" "0%")) }}
{{- fail "updateStrategy: maxUnavailable and maxSurge cannot both be 0 (the rollout could never replace a pod). Use maxSurge 1 with maxUnavailable 0 (the default), or maxSurge 0 with maxUnavailable 1." }}
{{- end }}
{{- if and (eq .Values.seccomp.mode "runtimeDefault") (eq .Values.dataplane.engine "uring") }}
{{- fail "dataplane.engine=uring cannot start under seccomp.mode=runtimeDefault: the runtime's default profile blocks io_uring. Use seccomp.mode=localhost (or unconfined), or dataplane.engine=auto to fall back to netpoll." }}
{{- end }}
{{- $drain := add .Values.dataplane.drain.graceSeconds .Values.dataplane.drain.timeoutSeconds }}
{{- if and (not (kindIs "invalid" .Values.terminationGracePeriodSeconds)) (lt (int .Values.terminationGracePeriodSeconds) (int $drain)) }}
{{- fail (printf "terminationGracePeriodSeconds=%v is below dataplane.drain.graceSeconds + dataplane.drain.timeoutSeconds = %v: the kubelet would kill the dataplane before in-flight requests finish. Raise it, or set it to null to compute it." .Values.terminationGracePeriodSeconds $drain) }}
{{- end }}
{{- $ports := list (int .Values.dataplane.adminPort) (int .Values.controller.metricsPort) (int .Values.controller.healthPort) }}
{{- if ne (len $ports) (len (uniq $ports)) }}
{{- fail (printf "dataplane.adminPort, controller.metricsPort and controller.healthPort must differ (got %v): all three bind on the node's host network." $ports) }}
{{- end }}
{{- if include "flax.metricsLoopback" . }}
{{- if .Values.metrics.scrapeAnnotations }}
{{- fail (printf "metrics.scrapeAnnotations needs metrics.bindAddress other than %s: Prometheus cannot reach a node's loopback address. Set metrics.bindAddress=0.0.0.0." .Values.metrics.bindAddress) }}
{{- end }}
{{- if .Values.metrics.serviceMonitor.enabled }}
{{- fail (printf "metrics.serviceMonitor.enabled needs metrics.bindAddress other than %s: Prometheus cannot reach a node's loopback address. Set metrics.bindAddress=0.0.0.0." .Values.metrics.bindAddress) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Non-empty when metrics.bindAddress is a loopback address (only the node itself can
scrape it).
*/}}
{{- define "flax.metricsLoopback" -}}
{{- $a := .Values.metrics.bindAddress }}
{{- if or (hasPrefix "127." $a) (eq $a "::1") (eq $a "localhost") }}true{{ end }}
{{- end }}

{{/*
host:port for a port on metrics.bindAddress, with an IPv6 address in brackets.
Call with (list $ port).
*/}}
{{- define "flax.metricsAddress" -}}
{{- $ctx := index . 0 }}
{{- $a := $ctx.Values.metrics.bindAddress }}
{{- if contains ":" $a }}[{{ $a }}]{{ else }}{{ $a }}{{ end }}:{{ index . 1 }}
{{- end }}
