{{/*
Helpers. The sidecar templates (flagrelay.sidecar.*) are also called from other charts with
  (dict "Values" .Values.flagrelay "Release" .Release)
so everything they use reads only .Values and .Release, never .Chart.
*/}}

{{- define "flagrelay.name" -}}
{{- default "flagrelay" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "flagrelay.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "flagrelay.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "flagrelay.configMapName" -}}
{{- printf "%s-config" (include "flagrelay.fullname" . | trunc 56 | trimSuffix "-") -}}
{{- end -}}

{{- define "flagrelay.cacheClaimName" -}}
{{- .Values.persistence.existingClaim | default (printf "%s-cache" (include "flagrelay.fullname" . | trunc 57 | trimSuffix "-")) -}}
{{- end -}}

{{- define "flagrelay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flagrelay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "flagrelay.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "flagrelay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "flagrelay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "flagrelay.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* image.tag is kept equal to Chart.yaml's appVersion (a chart test checks it), so that the
sidecar templates need no .Chart. */}}
{{- define "flagrelay.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (required "image.tag (or image.digest) is required" $img.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/* The relay's config with the relay's defaults for the keys the chart reads. */}}
{{- define "flagrelay.config" -}}
{{- toYaml (.Values.config | default dict) -}}
{{- end -}}

{{/* A config port as a number; the chart needs a literal, not a ${VAR}. */}}
{{- define "flagrelay.port" -}}
{{- $cfg := .ctx.Values.config | default dict -}}
{{- $p := dig .section "port" .default $cfg | toString -}}
{{- if not (regexMatch "^[0-9]+$" $p) -}}
{{- fail (printf "config.%s.port must be a number (%q): the chart uses it for the container port and probes" .section $p) -}}
{{- end -}}
{{- $p -}}
{{- end -}}

{{- define "flagrelay.httpPort" -}}
{{- include "flagrelay.port" (dict "ctx" . "section" "listen" "default" 8030) -}}
{{- end -}}

{{- define "flagrelay.metricsPort" -}}
{{- include "flagrelay.port" (dict "ctx" . "section" "metrics" "default" 8031) -}}
{{- end -}}

{{- define "flagrelay.cacheDir" -}}
{{- $dir := dig "cache" "dir" "" (.Values.config | default dict) | toString -}}
{{- if and $dir (not (hasPrefix "/" $dir)) -}}
{{- fail (printf "config.cache.dir must be an absolute path (%q): the cache volume is mounted there" $dir) -}}
{{- end -}}
{{- $dir -}}
{{- end -}}

{{- define "flagrelay.probeScheme" -}}
{{- if hasKey (dig "listen" dict (.Values.config | default dict)) "tls" -}}HTTPS{{- else -}}HTTP{{- end -}}
{{- end -}}

{{/* A relay duration ("500ms", "1m30s") in milliseconds. */}}
{{- define "flagrelay.durationMs" -}}
{{- $d := toString . -}}
{{- if not (regexMatch "^([0-9]+(ms|h|m|s))+$" $d) -}}
{{- fail (printf "%q is not a duration (e.g. 5s, 1m30s, 500ms)" $d) -}}
{{- end -}}
{{- $ms := 0 -}}
{{- range regexFindAll "[0-9]+(ms|h|m|s)" $d -1 -}}
{{- $n := regexFind "^[0-9]+" . | int64 -}}
{{- $unit := regexReplaceAll "^[0-9]+" . "" -}}
{{- $scale := get (dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000) $unit -}}
{{- $ms = add $ms (mul $n $scale) -}}
{{- end -}}
{{- $ms -}}
{{- end -}}

{{/* The pod's grace period: after SIGTERM the relay keeps serving for shutdown.drainDelay, then
closes its listener and streams and flushes events for up to events.shutdownTimeout (default
5s), then closes the cache. The kubelet must not SIGKILL it before that. */}}
{{- define "flagrelay.terminationGracePeriodSeconds" -}}
{{- $cfg := .Values.config | default dict -}}
{{- $drain := include "flagrelay.durationMs" (dig "shutdown" "drainDelay" "0s" $cfg) | int64 -}}
{{- $flush := include "flagrelay.durationMs" (dig "events" "shutdownTimeout" "5s" $cfg) | int64 -}}
{{- $needed := div (add $drain $flush 999) 1000 -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $needed (.Values.terminationGraceMarginSeconds | default 10) -}}
{{- else -}}
{{- $pinned := .Values.terminationGracePeriodSeconds | int64 -}}
{{- if le $pinned $needed -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed shutdown.drainDelay + events.shutdownTimeout (%d s), or the kubelet kills the relay before it has flushed its events" $pinned $needed) -}}
{{- end -}}
{{- $pinned -}}
{{- end -}}
{{- end -}}

{{/* Fails rendering on values that would put a key in the ConfigMap (and in the Helm release,
which stores the values), or leave a ${VAR} the pod does not define. */}}
{{- define "flagrelay.checkSecrets" -}}
{{- $defined := dict -}}
{{- range .Values.secretEnv -}}
{{- if not (and .name .secretName .key) -}}
{{- fail (printf "secretEnv entries need name, secretName and key: %s" (toJson .)) -}}
{{- end -}}
{{- $_ := set $defined .name true -}}
{{- end -}}
{{- range .Values.env -}}
{{- $_ := set $defined .name true -}}
{{- if and (regexMatch "^LD_(ENV|MOBILE_KEY)_" .name) (hasKey . "value") -}}
{{- fail (printf "env %s holds a literal key: take it from a Secret with secretEnv" .name) -}}
{{- end -}}
{{- end -}}
{{- $cfg := .Values.config | default dict -}}
{{- $envs := $cfg.environments | default dict -}}
{{- if and (empty $envs) (empty .Values.envFrom) (not (regexMatch "(^| )LD_ENV_" (keys $defined | join " "))) -}}
{{- fail "config.environments is empty and no LD_ENV_<name> variable is defined: the relay needs at least one environment" -}}
{{- end -}}
{{- /* The relay reads ld-relay's variables itself: LD_MOBILE_KEY_<env> and LD_CLIENT_SIDE_ID_<env>
set that environment's key or ID, and fail its start when <env> is not an environment (names are
case-sensitive), so a variable meant for a ${VAR} reference must not look like one. */ -}}
{{- range $var, $_ := $defined -}}
{{- $target := regexReplaceAll "^LD_(MOBILE_KEY|CLIENT_SIDE_ID)_" $var "" -}}
{{- if and (ne $target $var) (not (hasKey $envs $target)) (not (hasKey $defined (printf "LD_ENV_%s" $target))) -}}
{{- fail (printf "variable %s: the relay reads LD_MOBILE_KEY_<environment> and LD_CLIENT_SIDE_ID_<environment> itself, and there is no environment %q; name the variable otherwise (e.g. LD_MOBILE_SDK_KEY_...) or the environment %s" $var $target $target) -}}
{{- end -}}
{{- end -}}
{{- $unchecked := not (empty .Values.envFrom) -}}
{{- range $name, $env := $envs -}}
{{- $env = $env | default dict -}}
{{- $refs := dict "sdkKey" $env.sdkKey "mobileKey" $env.mobileKey -}}
{{- range $k := list "expiringSdkKey" "expiringMobileKey" -}}
{{- $exp := get $env $k -}}
{{- if $exp -}}
{{- if not (kindIs "map" $exp) -}}
{{- fail (printf "config.environments.%s.%s must be a mapping {key, expiry}" $name $k) -}}
{{- end -}}
{{- $_ := set $refs (printf "%s.key" $k) (get $exp "key") -}}
{{- end -}}
{{- end -}}
{{- range $field, $v := $refs -}}
{{- if not (kindIs "invalid" $v) -}}
{{- $s := toString $v -}}
{{- if not (regexMatch "^\\$\\{[A-Za-z_][A-Za-z0-9_]*(:-)?\\}$" $s) -}}
{{- fail (printf "config.environments.%s.%s holds a literal value: keys must not be in the chart's values (they would be stored in the ConfigMap and the Helm release). Write ${VARIABLE} and fill VARIABLE from a Secret with secretEnv" $name $field) -}}
{{- end -}}
{{- $var := regexReplaceAll "^\\$\\{([A-Za-z0-9_]+).*$" $s "${1}" -}}
{{- if and (not $unchecked) (not (contains ":-" $s)) (not (hasKey $defined $var)) -}}
{{- fail (printf "config.environments.%s.%s refers to ${%s}, which neither secretEnv nor env defines" $name $field $var) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $proxy := dig "proxy" "url" "" $cfg | toString -}}
{{- if regexMatch "^[a-z]+://[^/@]*:[^/@$]+@" $proxy -}}
{{- fail "config.proxy.url holds a literal password: write ${VARIABLE} for it and fill it from a Secret with secretEnv" -}}
{{- end -}}
{{- end -}}

{{/* Every check that does not depend on the template being rendered; the ConfigMap, which
every mode renders, calls it. */}}
{{- define "flagrelay.validate" -}}
{{- if not (has .Values.mode (list "standalone" "sidecar")) -}}
{{- fail (printf "mode must be standalone or sidecar, not %q" (toString .Values.mode)) -}}
{{- end -}}
{{- include "flagrelay.checkSecrets" . -}}
{{- $_ := include "flagrelay.terminationGracePeriodSeconds" . -}}
{{- $_ = include "flagrelay.httpPort" . -}}
{{- $_ = include "flagrelay.cacheDir" . -}}
{{- if and .Values.persistence.enabled (not (include "flagrelay.cacheDir" .)) -}}
{{- fail "persistence.enabled needs config.cache.dir" -}}
{{- end -}}
{{- if and (eq .Values.mode "standalone") .Values.persistence.enabled .Values.persistence.existingClaim (or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1)) -}}
{{- fail "persistence.existingClaim is one ReadWriteOnce volume, which one relay can use: set replicaCount 1 and autoscaling.enabled false, or drop existingClaim for a StatefulSet with a claim per replica" -}}
{{- end -}}
{{- if and (eq .Values.mode "sidecar") .Values.persistence.enabled .Values.persistence.existingClaim (not .Values.sidecar.cacheVolume) -}}
{{- fail "persistence.existingClaim with sidecar.cacheVolume false: the claim would never be mounted" -}}
{{- end -}}
{{- /* The kubelet's probes connect to the pod's IP: a listener on loopback fails them all. */ -}}
{{- $cfg := .Values.config | default dict -}}
{{- $listenHost := dig "listen" "host" "" $cfg | toString -}}
{{- $hosts := dict "listen" $listenHost -}}
{{- if ne (include "flagrelay.metricsPort" .) "0" -}}
{{- $_ := set $hosts "metrics" (dig "metrics" "host" $listenHost $cfg | toString) -}}
{{- end -}}
{{- range $section, $host := $hosts -}}
{{- if or (hasPrefix "127." $host) (eq $host "localhost") (eq $host "::1") -}}
{{- fail (printf "config.%s.host is %s, but the kubelet's probes connect to the pod's IP: listen on 0.0.0.0 (or ::)" $section $host) -}}
{{- end -}}
{{- end -}}
{{- $mon := .Values.monitoring -}}
{{- if and $mon.serviceMonitor.enabled (eq (include "flagrelay.metricsPort" .) "0") -}}
{{- fail "monitoring.serviceMonitor.enabled needs the metrics listener (config.metrics.port is 0)" -}}
{{- end -}}
{{- if and $mon.serviceMonitor.enabled (eq .Values.mode "sidecar") (empty $mon.serviceMonitor.podSelector) -}}
{{- fail "monitoring.serviceMonitor.podSelector is required in sidecar mode: the labels of the pods that carry the sidecar" -}}
{{- end -}}
{{- end -}}

{{/* A checksum of config.yaml for rollOnConfigChange. */}}
{{- define "flagrelay.configChecksum" -}}
{{- include "flagrelay.config" . | sha256sum -}}
{{- end -}}

{{/* The container, in both modes. Argument: (dict "ctx" <context> "sidecar" bool). */}}
{{- define "flagrelay.containerSpec" -}}
{{- $ := .ctx -}}
{{- $v := $.Values -}}
{{- $sidecar := .sidecar -}}
{{- $httpName := ternary $v.sidecar.portNames.http "http" $sidecar -}}
{{- $metricsName := ternary $v.sidecar.portNames.metrics "metrics" $sidecar -}}
{{- $metricsPort := include "flagrelay.metricsPort" $ -}}
{{- $scheme := include "flagrelay.probeScheme" $ -}}
{{- /* Liveness goes to the metrics listener when there is one: it has its own connection cap, so
       a relay whose SDK port is full (listen.maxConnections) is not restarted. It is plain HTTP. */ -}}
{{- $livePort := ternary $httpName $metricsName (eq $metricsPort "0") -}}
{{- $liveScheme := ternary $scheme "HTTP" (eq $metricsPort "0") -}}
{{- $cacheDir := include "flagrelay.cacheDir" $ -}}
- name: {{ ternary $v.sidecar.name "flagrelay" $sidecar }}
  image: {{ include "flagrelay.image" $ }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args: ["--config", "/etc/flagrelay/config.yaml"]
  {{- if and $sidecar $v.sidecar.native }}
  restartPolicy: Always
  {{- end }}
  {{- if or $v.secretEnv $v.env }}
  env:
    {{- range $v.secretEnv }}
    - name: {{ .name }}
      valueFrom:
        secretKeyRef:
          name: {{ .secretName }}
          key: {{ .key }}
          {{- if .optional }}
          optional: true
          {{- end }}
    {{- end }}
    {{- with $v.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  {{- with $v.envFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    - name: {{ $httpName }}
      containerPort: {{ include "flagrelay.httpPort" $ }}
      protocol: TCP
    {{- if ne $metricsPort "0" }}
    - name: {{ $metricsName }}
      containerPort: {{ $metricsPort }}
      protocol: TCP
    {{- end }}
  startupProbe:
    httpGet:
      path: /healthz
      port: {{ $livePort }}
      scheme: {{ $liveScheme }}
    {{- toYaml $v.probes.startup | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: {{ $livePort }}
      scheme: {{ $liveScheme }}
    {{- toYaml $v.probes.liveness | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: {{ $httpName }}
      scheme: {{ $scheme }}
    {{- toYaml $v.probes.readiness | nindent 4 }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  resources:
    {{- toYaml (ternary $v.sidecar.resources $v.resources $sidecar) | nindent 4 }}
  volumeMounts:
    # The whole directory, never subPath: the kubelet then swaps a changed ConfigMap in
    # atomically and reload.watchInterval picks it up.
    - name: flagrelay-config
      mountPath: /etc/flagrelay
      readOnly: true
    {{- if $cacheDir }}
    - name: flagrelay-cache
      mountPath: {{ $cacheDir }}
    {{- end }}
    {{- with $v.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/* The pod's volumes, in both modes. Argument: (dict "ctx" <context> "cache" bool), cache false
when a StatefulSet's volumeClaimTemplates provide the cache volume. */}}
{{- define "flagrelay.volumesSpec" -}}
{{- $ := .ctx -}}
{{- $v := $.Values -}}
- name: flagrelay-config
  configMap:
    name: {{ include "flagrelay.configMapName" $ }}
{{- if and .cache (include "flagrelay.cacheDir" $) }}
- name: flagrelay-cache
  {{- if $v.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "flagrelay.cacheClaimName" $ }}
  {{- else }}
  emptyDir:
    {{- with $v.cacheEmptyDir.sizeLimit }}
    sizeLimit: {{ . }}
    {{- else }} {}
    {{- end }}
  {{- end }}
{{- end }}
{{- with $v.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
flagrelay.sidecar.container: the relay's container, a list item for a pod's `containers:` (or
`initContainers:` with sidecar.native). From another chart that has flagrelay as a dependency:
  containers:
    {{- include "flagrelay.sidecar.container" (dict "Values" .Values.flagrelay "Release" .Release) | nindent 4 }}
*/}}
{{- define "flagrelay.sidecar.container" -}}
{{- if ne .Values.mode "sidecar" -}}
{{- fail "flagrelay.sidecar.container: set the flagrelay chart's mode to sidecar (in standalone mode it renders its own Deployment)" -}}
{{- end -}}
{{- include "flagrelay.containerSpec" (dict "ctx" . "sidecar" true) -}}
{{- end -}}

{{/* flagrelay.sidecar.volumes: the config ConfigMap and the cache volume, list items for the
pod's `volumes:`. */}}
{{- define "flagrelay.sidecar.volumes" -}}
{{- include "flagrelay.volumesSpec" (dict "ctx" . "cache" .Values.sidecar.cacheVolume) -}}
{{- end -}}

{{/* The PromQL selector that limits the alert rules to this release's series. */}}
{{- define "flagrelay.seriesSelector" -}}
{{- $sel := .Values.monitoring.prometheusRule.seriesSelector -}}
{{- if $sel -}}
{{- $sel -}}
{{- else if eq .Values.mode "sidecar" -}}
{{- printf "job=%q" (printf "%s/%s" .Release.Namespace (include "flagrelay.fullname" .)) -}}
{{- else -}}
{{- printf "job=%q" (include "flagrelay.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* storageClassName for the cache claim: "" = the cluster's default (the field is left out),
"-" = no class. */}}
{{- define "flagrelay.storageClass" -}}
{{- $sc := .Values.persistence.storageClass -}}
{{- if eq $sc "-" -}}
storageClassName: ""
{{- else if $sc -}}
storageClassName: {{ $sc | quote }}
{{- end -}}
{{- end -}}
