# A minimal harness for shell tests, sourced by tests/test_*.sh: check
# counts, prints each failure, and summary ends with the "N passed, N
# failed" line tests/run.sh sums.
passed=0 failed=0
check() { # description, then a command that must succeed
    desc=$1
    shift
    if "$@"; then passed=$((passed + 1)); else
        failed=$((failed + 1))
        echo "FAIL: $desc" >&2
    fi
}
summary() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
