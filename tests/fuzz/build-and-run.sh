#!/bin/sh
# build-and-run.sh - build the codec fuzz target and run it for a while.
#
# Usage: tests/fuzz/build-and-run.sh [SECONDS]   (default 20; any cwd)
#
# Builds fuzz_decoder with clang's libFuzzer + ASan + UBSan straight from
# the sources it needs (no meson), runs it for SECONDS on a scratch corpus
# seeded from tests/fuzz/seeds/, and prints one line
#     fuzz_decoder: ok (N runs)
# exiting 0, or prints the crash report and exits 1 (the scratch dir with
# the crash input is then kept and named). Needs clang and the fuzzer
# runtime (Debian 12: package libclang-rt-14-dev).
set -u

secs=${1:-20}
case $secs in
'' | *[!0-9]*)
	echo "usage: $0 [SECONDS]" >&2
	exit 2
	;;
esac

here=$(cd "$(dirname "$0")" && pwd) || exit 2
repo=$(cd "$here/../.." && pwd) || exit 2
work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz_decoder.XXXXXX") || exit 2
keep=0
trap '[ "$keep" = 1 ] || rm -rf "$work"' EXIT

if ! clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Wall -Wextra \
	-I "$repo/src" \
	"$here/fuzz_decoder.c" \
	"$repo/src/protocol/mh_codec.c" \
	"$repo/src/protocol/mh_optneg.c" \
	"$repo/src/util/mh_buf.c" \
	-o "$work/fuzz_decoder" 2>"$work/build.log"; then
	cat "$work/build.log" >&2
	echo "fuzz_decoder: build failed" >&2
	exit 1
fi

mkdir "$work/corpus" "$work/artifacts"
cp "$here"/seeds/* "$work/corpus/" 2>/dev/null || true

# UBSan findings are fatal, so libFuzzer records them as crashes.
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	ASAN_OPTIONS=detect_leaks=1 \
	"$work/fuzz_decoder" -max_total_time="$secs" -print_final_stats=1 \
	-artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/run.log" 2>&1
rc=$?

runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9][0-9]*\).*/\1/p' "$work/run.log" | tail -n 1)
if [ "$rc" -eq 0 ] && [ -n "$runs" ]; then
	echo "fuzz_decoder: ok ($runs runs)"
	exit 0
fi

keep=1
# Everything but libFuzzer's progress chatter: the invariant message, the
# sanitizer report and the name of the crash input.
grep -v -E '^(#[0-9]+[[:space:]]|INFO:|stat::)' "$work/run.log" >&2
echo "fuzz_decoder: FAILED (exit $rc); crash input and log kept in $work" >&2
exit 1
