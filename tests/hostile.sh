# What every hostile input must get (design.md section 1), as one shell
# function for the tests/test_hostile_*.sh scripts, sourced after
# tests/shell.sh:
#
#   hostile DESC CODE NEEDLE OUT INPUTS -- COMMAND...
#
# runs COMMAND with a time limit (HOSTILE_SECONDS, default 60) and, except
# under ASan (which reserves terabytes of address space), a memory limit
# (HOSTILE_KB, default 4 GiB of address space), and checks that
# - it exits with CODE (1 or 2), not by a signal or the time limit;
# - stderr is one line that contains NEEDLE (the file or option at fault);
# - nothing exists under OUT, the final output name ("-" for none), nor at
#   OUT.tmp;
# - the files in INPUTS (space-separated, "-" for none) are byte for byte as
#   before.
# Each of those is one check, so a failure says which rule broke.
HOSTILE_SECONDS=${HOSTILE_SECONDS:-60}
HOSTILE_KB=${HOSTILE_KB:-4194304}
HOSTILE_TMP=${BUILD:-build}/tests/hostile.$$
hostile() {
    h_desc=$1 h_code=$2 h_needle=$3 h_out=$4 h_inputs=$5
    shift 5
    [ "$1" = "--" ] && shift
    h_sums=""
    if [ "$h_inputs" != "-" ]; then
        # shellcheck disable=SC2086
        h_sums=$(cat $h_inputs | cksum)
    fi
    case "${SEQLENS:-}" in
    *asan*) h_limit="" ;;
    *) h_limit="ulimit -v $HOSTILE_KB;" ;;
    esac
    mkdir -p "$(dirname "$HOSTILE_TMP")"
    sh -c "$h_limit"' exec timeout -s KILL "$0" "$@"' "$HOSTILE_SECONDS" "$@" >/dev/null 2>"$HOSTILE_TMP.err" </dev/null
    h_status=$?
    h_lines=$(wc -l <"$HOSTILE_TMP.err")
    check "$h_desc: exit $h_code, got $h_status ($(head -c 300 "$HOSTILE_TMP.err"))" [ "$h_status" -eq "$h_code" ]
    check "$h_desc: one line on stderr, got $h_lines" [ "$h_lines" -eq 1 ]
    check "$h_desc: stderr names '$h_needle'" grep -qF -- "$h_needle" "$HOSTILE_TMP.err"
    if [ "$h_out" != "-" ]; then
        check "$h_desc: nothing at $h_out" [ ! -e "$h_out" -a ! -L "$h_out" ]
        check "$h_desc: nothing at $h_out.tmp" [ ! -e "$h_out.tmp" -a ! -L "$h_out.tmp" ]
    fi
    if [ "$h_inputs" != "-" ]; then
        # shellcheck disable=SC2086
        check "$h_desc: inputs unchanged" [ "$(cat $h_inputs | cksum)" = "$h_sums" ]
    fi
    rm -f "$HOSTILE_TMP.err"
}
