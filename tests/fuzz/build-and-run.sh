#!/bin/sh
# build-and-run.sh - build the libFuzzer targets of tests/fuzz and run them.
#
# Usage: tests/fuzz/build-and-run.sh [--each] [SECONDS [TARGET...]]   (any cwd)
#
#   SECONDS   fuzzing time, split evenly between the targets (default 20);
#             with --each, every target gets SECONDS (make fuzz)
#   TARGET    fuzz_decoder fuzz_mta_session fuzz_child_link (default: all)
#
# Builds each target with clang's libFuzzer + ASan + UBSan straight from
# the sources (no meson; the core objects are compiled once per run),
# replays every file of tests/fuzz/regressions/TARGET/ (a crash found once
# must stay fixed), then fuzzes for its share of SECONDS on a scratch
# corpus seeded from tests/fuzz/corpus/TARGET/ (and tests/fuzz/seeds/ for
# fuzz_decoder). Prints one line per target
#     TARGET: ok (N runs, R regressions replayed)
# and exits 0, or prints the crash report and exits 1 (the scratch dir
# with the crash input is then kept and named). Environment:
#   FUZZ_JOBS      parallel compiles (default: nproc)
#   FUZZ_KEEP_DIR  keep the build and the grown corpora there (make fuzz)
# Needs clang, the fuzzer runtime (Debian 12: libclang-rt-14-dev) and libev.
set -u

each=0
if [ "${1:-}" = --each ]; then
	each=1
	shift
fi
secs=${1:-20}
case $secs in
'' | *[!0-9]*)
	echo "usage: $0 [--each] [SECONDS [TARGET...]]" >&2
	exit 2
	;;
esac
[ $# -gt 0 ] && shift
targets=${*:-fuzz_decoder fuzz_mta_session fuzz_child_link}

here=$(cd "$(dirname "$0")" && pwd) || exit 2
repo=$(cd "$here/../.." && pwd) || exit 2
if [ -n "${FUZZ_KEEP_DIR:-}" ]; then
	mkdir -p "$FUZZ_KEEP_DIR" || exit 2
	work=$(cd "$FUZZ_KEEP_DIR" && pwd) || exit 2
	keep=1
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/milterhub-fuzz.XXXXXX") || exit 2
	keep=0
fi
trap '[ "$keep" = 1 ] || rm -rf "$work"' EXIT

CFLAGS="-g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
-std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -I $repo/src"
LDFLAGS="-fsanitize=fuzzer,address,undefined"

# The codec alone for fuzz_decoder; the whole core (meson.build's mhcore) for the others.
codec_src="src/protocol/mh_codec.c src/protocol/mh_optneg.c src/util/mh_buf.c"
core_src=$(sed -n "/^core_lib = static_library/,/include_directories/p" "$repo/meson.build" |
	sed -n "s/^ *'\(src\/[^']*\.c\)',*$/\1/p")

ntargets=0
for t in $targets; do
	[ -f "$here/$t.c" ] || {
		echo "$t: no such target ($here/$t.c)" >&2
		exit 2
	}
	ntargets=$((ntargets + 1))
done
if [ "$each" = 1 ]; then
	share=$secs
else
	share=$((secs / ntargets))
	[ "$share" -ge 1 ] || share=1
fi

# Compile every needed source once, in parallel.
mkdir -p "$work/obj"
for s in $core_src; do echo "$s"; done >"$work/sources"
if ! (cd "$repo" && xargs -P "${FUZZ_JOBS:-$(nproc)}" -I{} sh -c \
	'o="$1/obj/$(echo "$2" | tr / _).o"; [ "$o" -nt "$2" ] || clang $3 -c "$2" -o "$o"' \
	sh "$work" {} "$CFLAGS" <"$work/sources") >"$work/build.log" 2>&1; then
	cat "$work/build.log" >&2
	echo "fuzz: build failed" >&2
	keep=1
	exit 1
fi

objs_for() {
	case $1 in
	fuzz_decoder) list=$codec_src ;;
	*) list=$core_src ;;
	esac
	for s in $list; do printf '%s ' "$work/obj/$(echo "$s" | tr / _).o"; done
}

fail=0
for t in $targets; do
	# shellcheck disable=SC2086 # word splitting of the flag and object lists is intended
	if ! clang $CFLAGS -c "$here/$t.c" -o "$work/obj/$t.o" 2>"$work/$t.build.log" ||
		! clang $LDFLAGS "$work/obj/$t.o" $(objs_for "$t") -lev -lm \
			-o "$work/$t" 2>>"$work/$t.build.log"; then
		cat "$work/$t.build.log" >&2
		echo "$t: build failed" >&2
		fail=1
		continue
	fi

	mkdir -p "$work/corpus-$t" "$work/artifacts-$t"
	cp "$here/corpus/$t"/* "$work/corpus-$t/" 2>/dev/null || true
	[ "$t" = fuzz_decoder ] && cp "$here"/seeds/* "$work/corpus-$t/" 2>/dev/null
	cp "$here/regressions/$t"/* "$work/corpus-$t/" 2>/dev/null || true

	# UBSan findings are fatal, so libFuzzer records them as crashes.
	export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
	export ASAN_OPTIONS=detect_leaks=1

	nreg=0
	for r in "$here/regressions/$t"/*; do
		[ -f "$r" ] || continue
		nreg=$((nreg + 1))
		if ! "$work/$t" "$r" >"$work/$t.regress.log" 2>&1; then
			grep -v -E '^(INFO:|stat::)' "$work/$t.regress.log" >&2
			echo "$t: FAILED regression $r" >&2
			fail=1
			continue 2
		fi
	done

	"$work/$t" -max_total_time="$share" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$work/artifacts-$t/" "$work/corpus-$t" >"$work/$t.log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9][0-9]*\).*/\1/p' "$work/$t.log" | tail -n 1)
	if [ "$rc" -eq 0 ] && [ -n "$runs" ]; then
		echo "$t: ok ($runs runs in ${share}s, $nreg regressions replayed)"
		continue
	fi
	# Everything but libFuzzer's progress chatter: the invariant message, the
	# sanitizer report and the name of the crash input.
	grep -v -E '^(#[0-9]+[[:space:]]|INFO:|stat::)' "$work/$t.log" >&2
	echo "$t: FAILED (exit $rc); crash input and log kept in $work" >&2
	fail=1
done

[ "$fail" = 0 ] && exit 0
keep=1
exit 1
