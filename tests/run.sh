#!/bin/bash
# The whole test suite, as the README's second command and CI run it:
#   tests/run.sh            install what is needed, build, run everything
#   CW_NO_INSTALL=1 tests/run.sh     skip the package installation
#   CW_FUZZ_SECONDS=N       how long the fuzzer runs (default 30)
#
# Steps: a -Werror build with unit tests (make check), the component tests
# (a test program plays the XMPP server), a sanitizer build running the
# same unit and component tests, the libFuzzer harness for a fixed time,
# the end-to-end tests against real Prosody and ejabberd, a build with
# every backend switched off, and make distcheck; beside the fuzzers the
# Debian package (tests/package), and after the unit tests the manual
# pages (tests/man).  Every test prints TAP
# lines; the last line is "N passed, M failed" and the exit status is
# non-zero when anything failed.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
export LC_ALL=C.UTF-8
jobs=$(nproc 2>/dev/null || echo 2)
out=$top/build-tests
passed=0
failed=0
failures=()

note() { printf '\n=== %s\n' "$*"; }

# Counts the TAP lines of a log; a step that failed without saying which
# check failed (a crash, a build error) counts as one failure of its own.
count() {
	local name=$1 rc=$2 log=$3 p f
	p=$(grep -c '^ok ' "$log" 2>/dev/null)
	f=$(grep -c '^not ok ' "$log" 2>/dev/null)
	passed=$((passed + p))
	failed=$((failed + f))
	grep '^not ok ' "$log" | sed "s/^/  [$name] /" >> "$out/failures.txt"
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		failed=$((failed + 1))
		echo "  [$name] step failed (exit $rc) with no failing check: see $log" >> "$out/failures.txt"
	fi
	printf '%s: %d passed, %d failed%s\n' "$name" "$p" "$f" \
		"$([ "$rc" != 0 ] && echo " (exit $rc)")"
}

# step NAME LOG COMMAND...: runs a command that prints TAP.
step() {
	local name=$1 log=$2 rc
	shift 2
	note "$name"
	"$@" > "$log" 2>&1
	rc=$?
	grep -E '^(not ok|#)' "$log" | head -60
	count "$name" "$rc" "$log"
}

# build NAME DIR CONFIGURE-ARGS...: a build that is itself one check.
build() {
	local name=$1 dir=$2 rc
	shift 2
	note "$name"
	mkdir -p "$dir"
	( cd "$dir" && "$top/configure" -q "$@" && make -j"$jobs" ) > "$dir.log" 2>&1
	rc=$?
	if [ $rc = 0 ]; then
		echo "ok 1 - $name" > "$dir.tap"
	else
		tail -40 "$dir.log"
		echo "not ok 1 - $name" > "$dir.tap"
	fi
	count "$name" 0 "$dir.tap"
	return $rc
}

# make check's per-program logs hold each unit test's TAP lines.
unit() {
	local name=$1 dir=$2 rc
	note "$name"
	( cd "$dir" && make -j"$jobs" check ) > "$dir.check.log" 2>&1
	rc=$?
	cat "$dir"/tests/unit/*.log > "$dir.unit.tap" 2>/dev/null
	grep -E '^(not ok|#)' "$dir.unit.tap" | head -60
	count "$name" "$rc" "$dir.unit.tap"
}

rm -rf "$out"
mkdir -p "$out"
: > "$out/failures.txt"

if [ -z "${CW_NO_INSTALL:-}" ]; then
	note "installing packages"
	if ! "$top/contrib/install-deps.sh" --test; then
		echo "0 passed, 1 failed"
		exit 1
	fi
fi

# VPATH builds need a source tree that is not configured in place.
if [ -f "$top/config.status" ]; then
	note "the source tree was configured in place: make distclean"
	make -s distclean > /dev/null 2>&1 || true
fi
note "autogen"
./autogen.sh > "$out/autogen.log" 2>&1 || { cat "$out/autogen.log"; echo "0 passed, 1 failed"; exit 1; }

if build "build (-Werror)" "$out/main" --enable-werror; then
	unit "unit tests" "$out/main"
	step "component tests" "$out/component.tap" \
		env CAUSEWAY_BIN="$out/main/causeway" bash tests/component/run.sh
	step "manual pages" "$out/man.tap" \
		env CAUSEWAY_BIN="$out/main/causeway" CAUSEWAY_BUILD="$out/main" \
		python3 tests/man/test_man.py
fi

if build "build (ASan+UBSan)" "$out/asan" --enable-werror --enable-sanitizers; then
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	unit "unit tests (sanitizers)" "$out/asan"
	step "component tests (sanitizers)" "$out/component-asan.tap" \
		env CAUSEWAY_BIN="$out/asan/causeway" bash tests/component/run.sh
	unset ASAN_OPTIONS UBSAN_OPTIONS
fi

# fuzz_one NAME CORPUS: one libFuzzer harness for a fixed time on a copy
# of its seed corpus (new inputs stay out of the tree).
fuzz_one() {
	local name=$1 seeds=$2 secs=${CW_FUZZ_SECONDS:-30} corpus rc
	corpus=$(mktemp -d)
	cp "$seeds"/* "$corpus"/
	( cd "$out/fuzz" && make "tests/fuzz/fuzz_$name" ) > "$out/fuzz-$name.build.log" 2>&1 || {
		tail -20 "$out/fuzz-$name.build.log"
		echo "not ok - fuzz $name: build failed"
		return 1
	}
	"$out/fuzz/tests/fuzz/fuzz_$name" -max_total_time="$secs" \
		-max_len=65536 -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$out/fuzz-$name-" "$corpus" 2>&1 | tail -3
	rc=${PIPESTATUS[0]}
	rm -rf "$corpus"
	if [ "$rc" = 0 ]; then echo "ok - fuzz $name for ${secs}s"; else echo "not ok - fuzz $name (crash saved as $out/fuzz-$name-*)"; fi
	return "$rc"
}
fuzz() {
	local rc=0
	fuzz_one xmlstream tests/fuzz/corpus || rc=1
	fuzz_one config tests/fuzz/corpus_config || rc=1
	fuzz_one form tests/fuzz/corpus_form || rc=1
	if [ -d tests/fuzz/corpus_irc ]; then
		fuzz_one irc_proto tests/fuzz/corpus_irc || rc=1
	fi
	if [ -d tests/fuzz/corpus_sms ]; then
		fuzz_one sms_text tests/fuzz/corpus_sms || rc=1
		fuzz_one smstools tests/fuzz/corpus_smstools || rc=1
		fuzz_one sms_query tests/fuzz/corpus_sms_query || rc=1
		fuzz_one sms_http tests/fuzz/corpus_sms_http || rc=1
	fi
	if [ -d tests/fuzz/corpus_email ]; then
		fuzz_one email_mime tests/fuzz/corpus_email || rc=1
		fuzz_one email_imap tests/fuzz/corpus_email_imap || rc=1
	fi
	return $rc
}
# The Debian package (build from a clean copy, lintian, install, start,
# systemd-analyze, upgrade, purge) runs beside the fuzzers: they run for a
# fixed time whatever the load, and nothing else runs then.  It installs
# into the system; no other stage uses the installed package.
note "Debian package (in the background, beside the fuzzers)"
CW_PKG_JOBS=1 CW_PKG_DIR="$out/package" bash tests/package/test_package.sh \
	> "$out/package.tap" 2>&1 &
package_pid=$!

note "fuzz build"
mkdir -p "$out/fuzz"
if ( cd "$out/fuzz" && "$top/configure" -q CC=clang --enable-fuzzing ) > "$out/fuzz.log" 2>&1; then
	step "fuzz" "$out/fuzz.tap" fuzz
else
	tail -20 "$out/fuzz.log"
	echo "not ok 1 - fuzz build" > "$out/fuzz.tap"
	count "fuzz" 1 "$out/fuzz.tap"
fi

note "Debian package"
wait "$package_pid"
package_rc=$?
grep -E '^(not ok|#)' "$out/package.tap" | head -60
count "Debian package" "$package_rc" "$out/package.tap"

if [ -x "$out/main/causeway" ]; then
	step "end-to-end (Prosody, ejabberd)" "$out/e2e.tap" \
		env CAUSEWAY_BIN="$out/main/causeway" bash tests/e2e/run.sh
fi

# The paths a user from outside reaches first (joins without
# registration, room events, the destination policy, mail submission and
# Kannel callbacks) once more on the sanitizer build: every run of
# causeway there adds a check that its output holds no sanitizer report.
if [ -x "$out/asan/causeway" ]; then
	step "end-to-end (sanitizers)" "$out/e2e-asan.tap" \
		env CAUSEWAY_BIN="$out/asan/causeway" CW_SANITIZERS=1 \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		bash tests/e2e/run.sh tests/e2e/test_irc_access.py \
		tests/e2e/test_irc_rooms.py tests/e2e/test_irc_destinations.py \
		tests/e2e/test_email_submission.py tests/e2e/test_sms_kannel.py
fi

if [ -x "$out/main/causeway" ]; then
	step "stock clients (profanity, poezio)" "$out/clients.tap" \
		env CAUSEWAY_BIN="$out/main/causeway" CW_ARTIFACTS="$out/clients" \
		bash tests/clients/run.sh
fi

demo() {
	if CAUSEWAY_BIN="$out/main/causeway" bash contrib/demo.sh --check; then
		echo "ok 1 - the README's demo (contrib/demo.sh --check) answers"
	else
		echo "not ok 1 - the README's demo (contrib/demo.sh --check)"
	fi
}
if [ -x "$out/main/causeway" ]; then
	step "demo" "$out/demo.tap" demo
fi

build "build with every backend disabled" "$out/nobackends" --enable-werror \
	--disable-irc --disable-email --disable-sms

note "distcheck"
if ( cd "$out/main" && make -j"$jobs" distcheck ) > "$out/distcheck.log" 2>&1; then
	echo "ok 1 - make distcheck" > "$out/distcheck.tap"
else
	tail -30 "$out/distcheck.log"
	echo "not ok 1 - make distcheck" > "$out/distcheck.tap"
fi
count "distcheck" 0 "$out/distcheck.tap"

if [ "$failed" != 0 ]; then
	note "failures"
	cat "$out/failures.txt"
fi
echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
