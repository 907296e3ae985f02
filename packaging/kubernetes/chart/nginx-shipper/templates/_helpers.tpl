{{- define "nginx-shipper.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "nginx-shipper.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "nginx-shipper.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nginx-shipper.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "nginx-shipper.labels" -}}
{{ include "nginx-shipper.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "nginx-shipper.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "nginx-shipper.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "nginx-shipper.priorityClassName" -}}
{{- default (include "nginx-shipper.fullname" .) .Values.priorityClass.name }}
{{- end }}

{{/* bytes of a Kubernetes memory quantity (Ki, Mi, Gi, Ti, K, M, G, T or plain). */}}
{{- define "nginx-shipper.bytes" -}}
{{- $q := toString . -}}
{{- $units := dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "K" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 -}}
{{- $m := regexFind "^[0-9]+" $q -}}
{{- $u := trimPrefix $m $q -}}
{{- if or (eq $m "") (and (ne $u "") (not (hasKey $units $u))) -}}
{{- fail (printf "resources.limits.memory: %q is not a memory quantity this chart understands (e.g. 256Mi, 1Gi, 300M)" $q) -}}
{{- end -}}
{{- if eq $u "" -}}{{ $m }}{{- else -}}{{ mul (atoi $m) (get $units $u) }}{{- end -}}
{{- end }}

{{/* A TOML value: strings quoted, whole numbers as integers, lists inline. */}}
{{- define "nginx-shipper.tomlValue" -}}
{{- if kindIs "string" . -}}{{ toJson . }}
{{- else if kindIs "bool" . -}}{{ . }}
{{- else if kindIs "slice" . -}}[{{ range $i, $v := . }}{{ if $i }}, {{ end }}{{ include "nginx-shipper.tomlValue" $v }}{{ end }}]
{{- else if or (kindIs "float64" .) (kindIs "float32" .) -}}{{ if eq (float64 .) (floor .) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else if kindIs "invalid" . -}}""
{{- else -}}{{ . }}
{{- end -}}
{{- end }}

{{/* isTable: a map, or a non-empty list of maps (an array of tables). */}}
{{- define "nginx-shipper.tomlTable" -}}
{{- $t := .table -}}
{{- $prefix := .prefix -}}
{{- range $k := keys $t | sortAlpha }}
{{- $v := get $t $k }}
{{- if not (or (kindIs "map" $v) (and (kindIs "slice" $v) $v (kindIs "map" (first $v)))) }}
{{ $k }} = {{ include "nginx-shipper.tomlValue" $v }}
{{- end }}
{{- end }}
{{- range $k := keys $t | sortAlpha }}
{{- $v := get $t $k }}
{{- $name := ternary $k (printf "%s.%s" $prefix $k) (eq $prefix "") }}
{{- if kindIs "map" $v }}

[{{ $name }}]
{{- include "nginx-shipper.tomlTable" (dict "table" $v "prefix" $name) }}
{{- else if and (kindIs "slice" $v) $v (kindIs "map" (first $v)) }}
{{- range $item := $v }}

[[{{ $name }}]]
{{- include "nginx-shipper.tomlTable" (dict "table" $item "prefix" $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The paths of one of the inputs.ingressNginx / inputs.nginx entries. */}}
{{- define "nginx-shipper.podPaths" -}}
{{- $in := .in -}}
{{- $paths := list -}}
{{- range $ns := $in.namespaces }}
{{- range $c := $in.containers }}
{{- $paths = append $paths (printf "%s/pods/%s_%s_*/%s/*.log" $.logDir $ns $in.pods $c) }}
{{- end }}
{{- end }}
{{- toJson $paths -}}
{{- end }}

{{/* The whole configuration, as a dict rendered by tomlTable. */}}
{{- define "nginx-shipper.config" -}}
{{- $agent := merge (dict
  "hostname" "${NODE_NAME}"
  "data_dir" "/var/lib/nginx-shipper"
  "metrics_listen" (printf "0.0.0.0:%d" (int .Values.metrics.port))
  "memory_limit" (div (mul (include "nginx-shipper.bytes" .Values.resources.limits.memory | atoi) (int .Values.memoryLimitPercent)) 100)
  ) (deepCopy .Values.agent) -}}
{{- $inputs := list -}}
{{- range $key := list "ingressNginx" "nginx" }}
{{- $in := get $.Values.inputs $key }}
{{- if $in.enabled }}
{{- $in := dict "paths" (include "nginx-shipper.podPaths" (dict "in" $in "logDir" $.Values.nodeLogDir) | fromJsonArray) "exclude" (list "*.gz" "*.tmp") "container" $in.container "format" $in.format "stderr_format" $in.stderrFormat }}
{{- $inputs = append $inputs $in }}
{{- end }}
{{- end }}
{{- range $in := .Values.inputs.extra }}
{{- $inputs = append $inputs $in }}
{{- end }}
{{- if not $inputs }}
{{- fail "inputs: enable inputs.ingressNginx or inputs.nginx, or list inputs.extra" }}
{{- end }}
{{- $sinks := dict }}
{{- range $name, $s := .Values.sinks }}
{{- if $s.enabled }}
{{- $_ := set $sinks $name $s }}
{{- end }}
{{- end }}
{{- if not $sinks }}
{{- fail "sinks: enable sinks.kafka and/or sinks.s3 (enabled: true): the agent refuses to run without a sink" }}
{{- end }}
{{- $cfg := dict "agent" $agent "inputs" $inputs "sinks" $sinks }}
{{- include "nginx-shipper.tomlTable" (dict "table" $cfg "prefix" "") }}
{{- end }}
