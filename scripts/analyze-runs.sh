#!/bin/sh
# Analyses many training runs (model directories) on one dataset, then
# writes a cross-run summary. Finished runs and stages are kept, so an
# interrupted batch resumes where it stopped.
#
#   scripts/analyze-runs.sh [-o OUT] [-j JOBS] [-a 'ANALYZE OPTIONS'] [-m 'MPIRUN'] DATA RUN...
#
#   -o OUT   where results go (default: runs-report): OUT/runs/NAME/ per run
#            (NAME is the run directory's last component) with its log in
#            OUT/logs/NAME.log; OUT/summary.html, summary.csv and summary.json
#   -j JOBS  runs analysed at once (default 1); give each a share of the cores
#            with -a '--threads N'
#   -a OPTS  options for every seqlens analyze (e.g. '--threads 2 --steps 8')
#   -m CMD   run each analyze under this MPI launcher, its examples sharded
#            over the ranks (e.g. 'mpirun -np 8 --hostfile hosts'; keep -j 1
#            so that runs do not share the ranks' cores); needs bin/seqlens-mpi
#
# SEQLENS names the binary (default: bin/seqlens of this checkout, with -m
# bin/seqlens-mpi, else seqlens on PATH). Exit status: 0 when every run was analysed, 1 when some
# failed (the summary then covers the others), 2 on bad usage.
set -u
usage() { sed -n '6,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
out=runs-report jobs=1 opts="" launcher=""
while getopts o:j:a:m:h flag; do
    case $flag in
    o) out=$OPTARG ;;
    j) jobs=$OPTARG ;;
    a) opts=$OPTARG ;;
    m) launcher=$OPTARG ;;
    *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || usage
case $jobs in '' | *[!0-9]* | 0) echo "analyze-runs: -j '$jobs': expected a positive integer" >&2; exit 2 ;; esac
data=$1
shift
[ -f "$data" ] || { echo "analyze-runs: $data: no such file" >&2; exit 2; }

here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${SEQLENS:-}" ]; then
    bin=seqlens
    [ -n "$launcher" ] && bin=seqlens-mpi
    if [ -x "$here/bin/$bin" ]; then SEQLENS=$here/bin/$bin; else SEQLENS=$bin; fi
fi

status_dir=$(mktemp -d) || exit 1
trap 'rm -rf "$status_dir"' EXIT
# run names must be distinct: they name the output directories. A name is
# only ever a quoted argument or printf data: it may hold any character.
mkdir "$status_dir/names" || exit 1
for run in "$@"; do
    [ -f "$run/config.json" ] || { echo "analyze-runs: $run: not a model directory (no config.json)" >&2; exit 2; }
    name=$(basename "$run")
    case $name in . | ..) echo "analyze-runs: $run: a run directory cannot be named '$name'" >&2; exit 2 ;; esac
    [ -e "$status_dir/names/$name" ] && { echo "analyze-runs: two runs are named '$name'; rename one" >&2; exit 2; }
    : >"$status_dir/names/$name" || exit 1
done

mkdir -p "$out/runs" "$out/logs" || exit 1
# prefix: each line of standard input as "NAME: line"
prefix() { while IFS= read -r line || [ -n "$line" ]; do printf '%s: %s\n' "$1" "$line"; done; }
analyse() { # run name
    log="$out/logs/$2.log"
    # shellcheck disable=SC2086 # opts and launcher are lists of words
    if [ "$jobs" -eq 1 ]; then
        # one at a time: show each stage as it finishes
        { $launcher "$SEQLENS" analyze "$1" "$data" -o "$out/runs/$2" $opts; echo $? >"$status_dir/$2.rc"; } 2>&1 |
            tee "$log" | prefix "$2"
    else
        { $launcher "$SEQLENS" analyze "$1" "$data" -o "$out/runs/$2" $opts; echo $? >"$status_dir/$2.rc"; } >"$log" 2>&1
    fi
    if [ "$(cat "$status_dir/$2.rc" 2>/dev/null)" = 0 ]; then
        echo "analyze-runs: $2 done"
    else
        echo "analyze-runs: $2 FAILED: $(tail -n 1 "$log") (log: $log)" >&2
        : >"$status_dir/$2.failed"
    fi
}
running=0
for run in "$@"; do
    analyse "$run" "$(basename "$run")" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait
        running=0
    fi
done
wait

# the finished runs' directories become the positional parameters, one
# argument each whatever their names hold
total=$# failed=0
for run in "$@"; do
    name=$(basename "$run")
    shift
    if [ -e "$status_dir/$name.failed" ]; then failed=$((failed + 1)); else set -- "$@" "$out/runs/$name"; fi
done
[ $# -gt 0 ] || { echo "analyze-runs: every run failed" >&2; exit 1; }
"$SEQLENS" summarize "$@" -o "$out" || exit 1
[ "$failed" -eq 0 ] || { echo "analyze-runs: $failed of $total runs failed" >&2; exit 1; }
