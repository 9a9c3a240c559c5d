# bench/lib.sh - shared by the bench/ parts (sourced, bash).
#
# Gives: $here $build $mta $tm $hub $tmp; bench_args (--build DIR plus the part's own
# options); start_tm / start_hub / stop (every process started is stopped at exit);
# mta_run (one simulator run: its output line in $out, its own CPU seconds in $mta_cpu);
# procstat (bench/procstat: CPU, RSS, peak RSS, PSS, fds of a process or process tree);
# field (a key=value figure of a report line); med (median); has_opt (simulator option).

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$here/build
mta= tm= hub= tmp= _pids=()

bench_setup() { # after the part's own option parsing
	mta=$build/tools/mta/milterhub-mta
	tm=$build/tools/testmilter/milterhub-testmilter
	hub=$build/milterhub
	[ -x "$mta" ] && [ -x "$tm" ] || { echo "$0: build first (make)" >&2; exit 1; }
	tmp=$(mktemp -d /tmp/mh-bench.XXXXXX)
	trap _bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

_bench_cleanup() {
	local p
	for p in "${_pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${_pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}

_forget() { local p keep=(); for p in "${_pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; _pids=("${keep[@]}"); }

stop() { # PID...: SIGTERM, wait
	local p
	for p in "$@"; do kill "$p" 2>/dev/null; done
	for p in "$@"; do wait "$p" 2>/dev/null; _forget "$p"; done
	return 0
}

# Ready when one simulator session through SPEC succeeds (at most 5 s).
wait_ready() {
	local i
	for i in $(seq 50); do "$mta" --socket "$1" --timeout 1 >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "$0: nothing answers on $1" >&2; return 1
}

# start_tm SPEC [testmilter options]: a testmilter listening on SPEC; pid in $last_pid.
start_tm() {
	local spec=$1; shift
	"$tm" --listen "$spec" "$@" 2>>"$tmp/tm.err" &
	last_pid=$!; _pids+=("$last_pid")
	wait_ready "$spec"
}

# start_hub CONFIG LISTEN-SPEC: the daemon; the master's pid in $last_pid.
start_hub() {
	"$hub" -c "$1" 2>>"$tmp/hub.err" &
	last_pid=$!; _pids+=("$last_pid")
	wait_ready "$2"
}

# hub_conf FILE LISTEN WORKERS CHILD-SPEC...: a config with pass-through children c1..cN.
hub_conf() {
	local f=$1 listen=$2 workers=$3 i=0 s; shift 3
	printf 'manager { listen = "%s", workers = %s, control = "unix:%s/ctl-%s.sock" }\n' \
		"$listen" "$workers" "$tmp" "$(basename "$f" .lua)" >"$f"
	for s in "$@"; do
		i=$((i + 1))
		printf 'milter "c%s" { socket = "%s" }\n' "$i" "$s" >>"$f"
	done
}

procstat() { /usr/bin/python3 "$here/bench/procstat" "$@"; }

# mta_run ARGS...: one simulator run. $out = its stdout line, $mta_cpu = its CPU seconds.
mta_run() {
	local t
	TIMEFORMAT='%U %S'
	{ time "$mta" "$@" >"$tmp/mta.out" 2>"$tmp/mta.err"; } 2>"$tmp/mta.time" || true
	out=$(tail -n 1 "$tmp/mta.out")
	t=$(tail -n 1 "$tmp/mta.time")
	mta_cpu=$(awk '{ print $1 + $2 }' <<<"$t")
	if grep -q 'failed' "$tmp/mta.err"; then sed 's/^/      /' "$tmp/mta.err" >&2; fi
}

# field KEY LINE: the number after "KEY=" (rate=1234.5/s -> 1234.5).
field() { sed -n "s/.*[ ,{\"]$1=\\([0-9.]*\\).*/\\1/p; s/^$1=\\([0-9.]*\\).*/\\1/p" <<<"$2" | head -n 1; }

# med NUMBER...: the median (mean of the two middle ones for an even count).
med() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# has_opt OPTION: the simulator's --help lists it.
has_opt() { "$mta" --help 2>&1 | grep -q -- "$1\b"; }

# Chain mode (several --socket, driven one after another): detected from --help.
has_chain() { "$mta" --help 2>&1 | grep -- '--socket' | grep -qi 'repeat\|chain'; }

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# spec_of KIND NAME: a listening spec for a child or the hub ("unix" or "tcp").
spec_of() { if [ "$1" = unix ]; then echo "unix:$tmp/$2.sock"; else echo "inet:127.0.0.1:$(free_port)"; fi; }

machine() { echo "$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg)"; }
