#!/usr/bin/env bash
# install.sh builds Flax's pinned tools into bin/, only those missing or out of date.
#
# Each tool has a key: its module@version, or for the control-plane binaries and echo-basic
# a hash of the go.mod/go.sum that pins them plus the Go version. A built binary is kept in
# a per-user cache ($FLAX_TOOLS_CACHE, default ~/.cache/flax/tools) under its key, so a
# fresh clone on a machine that built the tools once gets them in seconds; bin/NAME.key
# records which key bin/NAME was built from.
#
# What is missing from the cache is built concurrently, at most $FLAX_TOOLS_JOBS builds at
# a time (default 2), longest first. The tools of one module (kube-apiserver,
# kube-controller-manager, kubectl and etcd, all from hack/tools) are built by a single
# `go build -o DIR pkg...`: they share most of their packages (kube-controller-manager
# compiles nearly all of kube-apiserver's), which one go command compiles once with all
# cores, where two concurrent go commands would each compile them. Each build logs to
# _out/tools/NAME.log; the script prints what it builds with an estimate, a progress line
# every $FLAX_TOOLS_PROGRESS seconds (default 30) and a summary. It records how long each
# build took in $CACHE/build-seconds and estimates from that the next time.
#
# Usage: hack/tools/install.sh [NAME...]   (no names: all tools)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="$ROOT/bin"
CACHE="${FLAX_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flax/tools}"
GO="${GO:-go}"
JOBS="${FLAX_TOOLS_JOBS:-2}"
PROGRESS="${FLAX_TOOLS_PROGRESS:-30}"
LOGS="$ROOT/_out/tools"
for v in JOBS PROGRESS; do
	if ! [[ ${!v} =~ ^[1-9][0-9]*$ ]]; then
		echo "install.sh: FLAX_TOOLS_$v must be a positive whole number, not '${!v}'" >&2
		exit 2
	fi
done
mkdir -p "$BIN" "$CACHE"

# Versions of the tools installed with `go install`, each from its own go.mod.
HELM="helm.sh/helm/v3/cmd/helm@v3.22.0"
GOLANGCI_LINT="github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0"
CONTROLLER_GEN="sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0"
PROTOC_GEN_GO="google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12"
PROTOC_GEN_GO_GRPC="google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2"
# CoreDNS at the version the Gateway API conformance base manifests run
# (registry.k8s.io/coredns/coredns:v1.12.2, the UDP backend); its go.mod has no replace
# directives, so `go install` builds it (about 5 minutes cold on 2 cores).
COREDNS="github.com/coredns/coredns@v1.12.2"

ALL=(kube-apiserver kube-controller-manager kubectl etcd echo-basic helm golangci-lint controller-gen protoc-gen-go protoc-gen-go-grpc coredns jaeger)

gover="$("$GO" env GOVERSION)"
modkey() { # hash of a module's go.mod and go.sum and the Go version
	cat "$1/go.mod" "$1/go.sum" | { cat; echo "$gover"; } | sha256sum | cut -c1-16
}

# spec NAME prints "KEY<TAB>how to build" for a tool.
spec() {
	case "$1" in
	kube-apiserver | kube-controller-manager | kubectl)
		printf '%s\t%s\n' "$(modkey "$ROOT/hack/tools")" "module hack/tools k8s.io/kubernetes/cmd/$1" ;;
	etcd)
		printf '%s\t%s\n' "$(modkey "$ROOT/hack/tools")" "module hack/tools go.etcd.io/etcd/server/v3" ;;
	echo-basic)
		printf '%s\t%s\n' "$(modkey "$ROOT/test/conformance")" "module test/conformance sigs.k8s.io/gateway-api/conformance/echo-basic" ;;
	jaeger)
		# Jaeger's go.mod has replace directives, so it cannot be `go install`ed: the
		# module hack/tools/jaeger requires it as a tool.
		printf '%s\t%s\n' "$(modkey "$ROOT/hack/tools/jaeger")" "module hack/tools/jaeger github.com/jaegertracing/jaeger/cmd/jaeger" ;;
	helm) printf '%s\t%s\n' "$HELM-$gover" "install $HELM" ;;
	golangci-lint) printf '%s\t%s\n' "$GOLANGCI_LINT-$gover" "install $GOLANGCI_LINT" ;;
	controller-gen) printf '%s\t%s\n' "$CONTROLLER_GEN-$gover" "install $CONTROLLER_GEN" ;;
	protoc-gen-go) printf '%s\t%s\n' "$PROTOC_GEN_GO-$gover" "install $PROTOC_GEN_GO" ;;
	protoc-gen-go-grpc) printf '%s\t%s\n' "$PROTOC_GEN_GO_GRPC-$gover" "install $PROTOC_GEN_GO_GRPC" ;;
	coredns) printf '%s\t%s\n' "$COREDNS-$gover" "install $COREDNS" ;;
	*) echo "install.sh: unknown tool $1 (known: ${ALL[*]})" >&2; return 1 ;;
	esac
}

# typical NAME prints a tool's usual cold build time in seconds on 2 idle cores (CPU time
# halved), used until this machine has built it once. For the hack/tools binaries it is
# what each adds to a build that includes kube-apiserver (they share most packages);
# measured on 2 busy cores: kube-apiserver about 1,100 CPU seconds, then kubectl 80 and
# kube-controller-manager over 300 more. The others are rough figures.
typical() {
	case "$1" in
	kube-apiserver) echo 540 ;;
	kube-controller-manager) echo 150 ;;
	kubectl) echo 60 ;;
	etcd) echo 60 ;;
	echo-basic) echo 60 ;;
	helm) echo 180 ;;
	golangci-lint) echo 240 ;;
	controller-gen) echo 60 ;;
	protoc-gen-go | protoc-gen-go-grpc) echo 20 ;;
	coredns) echo 300 ;;
	jaeger) echo 360 ;;
	*) echo 60 ;;
	esac
}

# exename PACKAGE prints the name go build and go install give the package's binary: the
# last path element, or the one before it when that is a major version (…/server/v3).
exename() {
	local p="${1%@*}"
	local last="${p##*/}"
	if [[ $last =~ ^v[0-9]+$ ]]; then
		p="${p%/*}"
		last="${p##*/}"
	fi
	echo "$last"
}

minutes() { # SECONDS -> "under a minute" or "about N min"
	if [ "$1" -lt 60 ]; then echo "under a minute"; else echo "about $(((($1) + 30) / 60)) min"; fi
}

# Recorded build times: lines "NAME SECONDS", SECONDS being the CPU time the tool's last
# cold build took divided by 2, i.e. its wall time alone on 2 cores (comparable with
# typical, whatever else ran at the same time). A build of several tools is shared out in
# proportion to their estimates.
SECONDS_FILE="$CACHE/build-seconds"
declare -A recorded=()
if [ -f "$SECONDS_FILE" ]; then
	while read -r n s; do
		if [[ $s =~ ^[0-9]+$ ]]; then recorded[$n]=$s; fi
	done <"$SECONDS_FILE"
fi
record_seconds() { # rewrites the file from $recorded (one writer: this script's main loop)
	local tmp="$SECONDS_FILE.$$"
	for n in "${!recorded[@]}"; do echo "$n ${recorded[$n]}"; done | sort >"$tmp"
	mv -f "$tmp" "$SECONDS_FILE"
}
estimate() { echo "${recorded[$1]:-$(typical "$1")}"; } # NAME -> seconds on 2 cores

declare -A key=() cached=() hows=()

install_bin() { # NAME: copies the cached binary into bin/ and records its key
	cp -f "${cached[$1]}" "$BIN/$1.tmp" && mv -f "$BIN/$1.tmp" "$BIN/$1"
	echo "${key[$1]}" >"$BIN/$1.key"
	echo "tools: bin/$1 ready"
}

# Which tools need building; copy the cached ones.
names=("$@")
[ ${#names[@]} -eq 0 ] && names=("${ALL[@]}")
need=()
for name in "${names[@]}"; do
	[ -n "${key[$name]:-}" ] && continue # named twice
	line="$(spec "$name")"
	IFS=$'\t' read -r k how <<<"$line"
	key[$name]="$k"
	cached[$name]="$CACHE/$name-$(echo "$k" | tr '/@' '__')"
	if [ -x "$BIN/$name" ] && [ "$(cat "$BIN/$name.key" 2>/dev/null)" = "$k" ]; then
		continue
	fi
	if [ -x "${cached[$name]}" ]; then
		install_bin "$name"
		continue
	fi
	need+=("$name")
	hows[$name]="$how"
done
[ ${#need[@]} -eq 0 ] && exit 0

# Units of work: one per `go install`, one per module for the `go build` tools. u_est is
# the unit's estimate in seconds on 2 cores.
u_tools=() u_cmd=() u_est=()
declare -A unit_of=()
for name in "${need[@]}"; do
	read -r kind arg1 arg2 <<<"${hows[$name]}"
	if [ "$kind" = module ] && [ -n "${unit_of[module $arg1]:-}" ]; then
		u=${unit_of[module $arg1]}
		u_tools[u]+=" $name"
		u_cmd[u]+=" $arg2"
	else
		u=${#u_tools[@]}
		u_tools[u]="$name"
		if [ "$kind" = module ]; then
			unit_of[module $arg1]=$u
			u_cmd[u]="module $arg1 $arg2"
		else
			u_cmd[u]="install $arg1"
		fi
		u_est[u]=0
	fi
	u_est[u]=$((u_est[u] + $(estimate "$name")))
done
label() { local t="${u_tools[$1]}"; echo "${t// /, }"; }
logfile() { local t="${u_tools[$1]}"; echo "$LOGS/${t// /+}.log"; }
joined() { # SEPARATOR WORD... -> the words joined by SEPARATOR, or "nothing"
	local sep="$1" out=""
	shift
	[ $# -eq 0 ] && { echo nothing; return; }
	out="$(printf "%s$sep" "$@")"
	echo "${out%"$sep"}"
}

# Until builds run, this machine is assumed to be as fast as min(cores, 8) cores allow
# (big builds do not scale much beyond that).
cores="$(nproc 2>/dev/null || echo 2)"
fast=$((cores < 8 ? cores : 8))

# Longest first, so the long build starts at once and the short ones fill the other slots.
mapfile -t pending < <(for u in "${!u_tools[@]}"; do echo "${u_est[u]} $u"; done | sort -rn | cut -d' ' -f2)
total_est=0
for u in "${pending[@]}"; do total_est=$((total_est + u_est[u])); done
jobs_now=$((JOBS < ${#pending[@]} ? JOBS : ${#pending[@]}))
mkdir -p "$LOGS"
plural() { if [ "$1" -eq 1 ]; then echo "1 tool"; else echo "$1 tools"; fi; }
echo "tools: building $(plural ${#need[@]}), $jobs_now at a time, $(minutes $((total_est * 2 / fast))) on $cores idle cores; logs in ${LOGS#"$ROOT"/}/"
for u in "${pending[@]}"; do
	read -r kind rest <<<"${u_cmd[u]}"
	if [ "$kind" = module ]; then how="one go build in ${rest%% *}"; else how="go install $rest"; fi
	echo "tools:   $(label "$u"): $how, $(minutes $((u_est[u] * 2 / fast)))"
done

# build_unit U DIR runs unit U's go command, writing the binaries into DIR.
build_unit() {
	local kind dir
	read -r kind dir _ <<<"${u_cmd[$1]}"
	if [ "$kind" = module ]; then
		local pkgs
		read -r -a pkgs <<<"${u_cmd[$1]#module "$dir" }"
		echo "+ (cd $dir && go build -o $2/ ${pkgs[*]})"
		cd "$ROOT/$dir"
		CGO_ENABLED=0 "$GO" build -o "$2/" "${pkgs[@]}"
	else
		echo "+ go install $dir"
		GOBIN="$2" CGO_ENABLED=0 "$GO" install "$dir"
	fi
}

# Per running unit: pid (also its process group), temporary folder in the cache, start time.
declare -A pid=() tmpdir=() started=()
running=()
cleanup() {
	for u in "${running[@]}"; do
		kill -TERM -- "-${pid[$u]}" 2>/dev/null || true
		wait "${pid[$u]}" 2>/dev/null || true
		rm -rf "${tmpdir[$u]}"
	done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_unit() {
	local u=$1 t
	t="$(mktemp -d "$CACHE/.build-XXXXXX")"
	tmpdir[$u]="$t"
	started[$u]=$SECONDS
	# The unit runs in a process group of its own (set -m), so that it can be stopped as
	# a whole. The outer subshell waits for the build, then writes its exit status and CPU
	# time: its children's user+system clock ticks (cutime, cstime: the fields 16 and 17
	# of /proc/PID/stat, 14 and 15 after the command name).
	set -m
	(
		set +m +e
		(build_unit "$u" "$t") >"$(logfile "$u")" 2>&1 </dev/null
		rc=$?
		read -r st <"/proc/$BASHPID/stat"
		read -r -a stat <<<"${st##*) }"
		echo "$rc $((stat[13] + stat[14]))" >"$t/.status"
	) &
	pid[$u]=$!
	set +m
	running+=("$u")
}

ticks="$(getconf CLK_TCK 2>/dev/null || echo 100)"
declare -A cpu_now=() # CPU ticks used so far by each running unit
# measure_running sets cpu_now: for each running unit the CPU time of the live processes
# of its group, their own (utime, stime) plus that of the children they waited for
# (cutime, cstime), which counts each process once, live or finished.
measure_running() {
	local f st fields u
	cpu_now=()
	for u in "${running[@]}"; do cpu_now[${pid[$u]}]=0; done
	for f in /proc/[0-9]*/stat; do
		{ read -r st <"$f"; } 2>/dev/null || continue
		read -r -a fields <<<"${st##*) }"
		[ -n "${cpu_now[${fields[2]}]:-}" ] || continue
		cpu_now[${fields[2]}]=$((cpu_now[${fields[2]}] + fields[11] + fields[12] + fields[13] + fields[14]))
	done
}

# remaining sets left_s to the estimated seconds left: the CPU time still to spend (each
# running unit's estimate less what it has used, at least a tenth of it), divided by the
# rate at which this script's builds used CPU since the last call (between half of the
# cores and all of them; the machine may be busy with other work).
t0=$SECONDS
cpu_total=0   # CPU ticks of the finished units
cpu_last=0    # CPU ticks of all units at the last call
time_last=$SECONDS
left_s=0
remaining() {
	local left=0 u used est2 floor now_total rate
	measure_running
	now_total=$cpu_total
	for u in "${pending[@]}"; do left=$((left + u_est[u] * 2 * ticks)); done
	for u in "${running[@]}"; do
		used=${cpu_now[${pid[$u]}]}
		now_total=$((now_total + used))
		est2=$((u_est[u] * 2 * ticks))
		floor=$((est2 / 10))
		left=$((left + (est2 - used > floor ? est2 - used : floor)))
	done
	# The rate in hundredths of a core; during the first minute (mostly downloads when
	# cold) the estimate assumes an idle machine.
	rate=$(((now_total - cpu_last) * 100 / ticks / (SECONDS > time_last ? SECONDS - time_last : 1)))
	[ $((SECONDS - t0)) -lt 60 ] && rate=$((fast * 100))
	[ "$rate" -lt $((cores * 50)) ] && rate=$((cores * 50))
	[ "$rate" -gt $((cores * 100)) ] && rate=$((cores * 100))
	cpu_last=$now_total
	time_last=$SECONDS
	left_s=$((left * 100 / ticks / rate))
}

built=0
summary=()
last_report=$SECONDS
failed=""
while [ ${#pending[@]} -gt 0 ] || [ ${#running[@]} -gt 0 ]; do
	while [ ${#running[@]} -lt "$JOBS" ] && [ ${#pending[@]} -gt 0 ]; do
		start_unit "${pending[0]}"
		pending=("${pending[@]:1}")
	done
	sleep 1
	still=()
	for u in "${running[@]}"; do
		if [ ! -f "${tmpdir[$u]}/.status" ]; then
			still+=("$u")
			continue
		fi
		wait "${pid[$u]}" || true
		read -r rc cpu <"${tmpdir[$u]}/.status"
		cpu_total=$((cpu_total + cpu))
		took=$((SECONDS - started[$u]))
		if [ "$rc" -ne 0 ]; then
			log="$(logfile "$u")"
			echo "tools: building $(label "$u") failed (exit status $rc) after ${took}s; the end of ${log#"$ROOT"/}:" >&2
			tail -n 40 "$log" >&2
			failed="$(label "$u")"
			rm -rf "${tmpdir[$u]}"
			continue
		fi
		# Move the binaries into the cache (same file system: an atomic rename), record
		# each tool's share of the CPU time, and install them.
		read -r kind _ <<<"${u_cmd[$u]}"
		read -r -a tools <<<"${u_tools[$u]}"
		share=0
		for name in "${tools[@]}"; do share=$((share + $(estimate "$name"))); done
		for name in "${tools[@]}"; do
			if [ "$kind" = module ]; then
				read -r -a words <<<"${hows[$name]}"
				exe="$(exename "${words[2]}")"
			else
				exe="$(exename "${hows[$name]#install }")"
			fi
			mv -f "${tmpdir[$u]}/$exe" "${cached[$name]}"
			# A build far shorter than typical came mostly from Go's build cache and
			# says nothing about the next cold one.
			s=$((cpu * $(estimate "$name") / share / ticks / 2))
			if [ $((s * 4)) -ge "$(typical "$name")" ]; then recorded[$name]=$s; fi
		done
		record_seconds
		rm -rf "${tmpdir[$u]}"
		built=$((built + ${#tools[@]}))
		summary+=("$(label "$u") (${took}s)")
		echo "tools: built $(label "$u") in ${took}s ($built of ${#need[@]} done)"
		for name in "${tools[@]}"; do install_bin "$name"; done
	done
	running=("${still[@]}")
	if [ -n "$failed" ]; then
		# The cleanup on exit stops the other builds; what they compiled so far stays in
		# Go's build cache.
		echo "tools: stopped because building $failed failed; built before: $(joined '; ' "${summary[@]}")" >&2
		exit 1
	fi
	if [ ${#running[@]} -gt 0 ] && [ $((SECONDS - last_report)) -ge "$PROGRESS" ]; then
		last_report=$SECONDS
		list=()
		for u in "${running[@]}"; do list+=("$(label "$u")"); done
		remaining
		echo "tools: building $(joined ', ' "${list[@]}") ($built of ${#need[@]} done, $(minutes "$left_s") left)"
	fi
done
echo "tools: built $(plural ${#need[@]}) in $((SECONDS - t0))s: $(joined '; ' "${summary[@]}")"
