#!/bin/sh
# scripts/analyze-runs.sh treats run names as data: a run directory named
# like a sed program with GNU sed's e flag, or holding spaces, runs nothing
# and is analysed like any other (design.md section 1, Safety); summarize
# takes any number of run directories.
. tests/shell.sh
S=${SEQLENS:-bin/seqlens}
T=${BUILD:-build}/tests/hostile-scripts
rm -rf "$T" && mkdir -p "$T"
T=$(cd "$T" && pwd) here=$(pwd)
case $S in /*) ;; *) S=$here/$S ;; esac
# the old prefixing, sed "s|^|$name: |", executed each output line of a run
# named 'touch pwned;|e' NEWLINE '#' as a shell command (run here from $T)
evil=$(printf 'touch pwned;|e\n#')
mkdir -p "$T/models"
cp -r examples/mamba "$T/models/$evil"
cp -r examples/mamba "$T/models/with space"
(cd "$T" && SEQLENS=$S sh "$here/scripts/analyze-runs.sh" -o "$T/batch" -a "--steps 2 --bootstrap 20 --threads 1 --examples 0:120" \
    "$here/examples/data.h5" "$T/models/$evil" "$T/models/with space" >"$T/out" 2>&1)
check "analyze-runs exits 0 ($(tail -n 2 "$T/out" | tr '\n' ' '))" [ $? -eq 0 ]
check "no command ran from a run's name" [ ! -e "$T/pwned" -a ! -e "$here/pwned" ]
check "output lines carry the name as text" grep -qF "touch pwned;|e" "$T/out"
check "a report for the run with a hostile name" [ -s "$T/batch/runs/$evil/report.html" ]
check "and for the one with a space" [ -s "$T/batch/runs/with space/report.html" ]
check "the summary has both runs" [ "$(grep -c '"run":' "$T/batch/summary.json")" -eq 2 ]
# summarize took at most 4,096 run directories and silently dropped the rest
set --
i=0
while [ $i -lt 4097 ]; do set -- "$@" "$T/batch/runs/with space"; i=$((i + 1)); done
"$S" summarize "$@" -o "$T/many" >/dev/null 2>&1
check "summarize of 4,097 runs exits 0" [ $? -eq 0 ]
check "and keeps every one of them" [ "$(grep -c '"run":' "$T/many/summary.json")" -eq 4097 ]
SEQLENS=$S sh scripts/analyze-runs.sh -o "$T/batch2" examples/data.h5 "$T/models/with space" "$T/models/with space" \
    >/dev/null 2>"$T/dup-err"
check "two runs of one name are refused with exit 2" [ $? -eq 2 ]
check "naming it" grep -qF "two runs are named 'with space'" "$T/dup-err"
summary
