#!/bin/sh
# Runs each libFuzzer target for SECONDS from its seed corpus
# (tests/fuzz/corpus/NAME, copied to build-fuzz/corpus/NAME, where new
# inputs accumulate). A crash stops the run: the input is left as
# build-fuzz/crash-NAME-*; copy it into tests/fuzz/crashers/ once fixed,
# where make test replays it for good (tests/test_fuzz_replay.c).
set -u
seconds=$1
shift
status=0
for t in "$@"; do
    work=build-fuzz/corpus/$t
    mkdir -p "$work"
    cp -n tests/fuzz/corpus/$t/* "$work"/ 2>/dev/null
    echo "== fuzz_$t for $seconds s"
    if ! build-fuzz/fuzz/fuzz_$t -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix=build-fuzz/crash-$t- "$work" 2>build-fuzz/fuzz_$t.log; then
        echo "fuzz_$t FOUND A CRASH: see build-fuzz/fuzz_$t.log and build-fuzz/crash-$t-*"
        tail -n 30 build-fuzz/fuzz_$t.log
        status=1
    else
        grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" build-fuzz/fuzz_$t.log | tr '\n' ' '
        echo
    fi
done
exit $status
