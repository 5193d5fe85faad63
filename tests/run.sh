#!/bin/sh
# Runs every test program, each ending with "N passed, N
# failed", and prints the sum as the last line. Run from the repository root
# (make test does).
passed=0 failed=0
# tests write their scratch files under build/tests, whatever BUILD is
mkdir -p build/tests
log=$(mktemp)
for t in "$@"; do
    start=$(date +%s)
    "$t" >"$log" 2>&1
    status=$?
    took=$(($(date +%s) - start))
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        echo "== $t: exited $status without a summary line"
        cat "$log"
        failed=$((failed + 1))
        continue
    fi
    p=${line%% passed*}
    f=${line#*passed, }
    f=${f%% failed*}
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$f" -ne 0 ] || [ "$status" -ne 0 ]; then
        echo "== $t: $line (exit $status)"
        grep -v -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | head -n 40
        [ "$f" -eq 0 ] && failed=$((failed + 1))
    else
        echo "ok $t: $line (${took} s)"
    fi
done
rm -f "$log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
