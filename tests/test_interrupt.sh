#!/bin/sh
# Killed at any moment, capture and analyze leave no corrupt file, and
# running the same command again completes the work with the same result.
. tests/shell.sh
S=${SEQLENS:-bin/seqlens}
T=${BUILD:-build}/tests/interrupt
rm -rf "$T" && mkdir -p "$T"
"$S" gym --task count --n 1500 --len 256 --seed 9 -o "$T/data.h5" >/dev/null
M=tests/trained/mamba_count

# capture, killed with SIGKILL (no chance to clean up) part way through
"$S" capture $M "$T/data.h5" --hook 'blocks.*.resid_post' --threads 1 -o "$T/whole.h5" >/dev/null 2>&1
check "an uninterrupted capture" [ -s "$T/whole.h5" ]
for delay in 0.1 0.3 0.6; do
    "$S" capture $M "$T/data.h5" --hook 'blocks.*.resid_post' --threads 1 -o "$T/acts.h5" >/dev/null 2>&1 &
    pid=$!
    sleep $delay
    kill -KILL $pid 2>/dev/null
    wait $pid 2>/dev/null
    # either it was killed (no acts.h5) or it had finished (a whole one)
    check "capture killed after $delay s leaves no partial acts.h5" \
        [ ! -e "$T/acts.h5" -o "$(stat -c %s "$T/acts.h5" 2>/dev/null)" = "$(stat -c %s "$T/whole.h5")" ]
    rm -f "$T/acts.h5"
done
"$S" capture $M "$T/data.h5" --hook 'blocks.*.resid_post' --threads 1 -o "$T/acts.h5" >/dev/null 2>&1
check "the rerun completes" [ $? -eq 0 -a -s "$T/acts.h5" ]
check "and leaves no temporary file" [ ! -e "$T/acts.h5.tmp" ]
check "with the size of an uninterrupted capture" [ "$(stat -c %s "$T/acts.h5")" -eq "$(stat -c %s "$T/whole.h5")" ]

# analyze, killed with SIGKILL at several moments: whatever is in DIR is
# whole (seqlens report validates every result file), then it resumes
"$S" analyze $M "$T/data.h5" -o "$T/ref" --steps 4 --bootstrap 100 --threads 1 >/dev/null 2>&1
check "an uninterrupted analyze" [ -s "$T/ref/report.html" ]
for delay in 0.3 0.8 1.6; do
    "$S" analyze $M "$T/data.h5" -o "$T/an" --steps 4 --bootstrap 100 --threads 1 >/dev/null 2>&1 &
    pid=$!
    sleep $delay
    kill -KILL $pid 2>/dev/null
    wait $pid 2>/dev/null
    sleep 0.3 # the running stage dies with analyze (PR_SET_PDEATHSIG)
    if ls "$T/an"/*.json >/dev/null 2>&1; then
        "$S" report "$T/an" >/dev/null 2>"$T/report-err"
        check "after a kill at $delay s every result file is whole" [ $? -eq 0 ]
    fi
    # the signal is immediate, the exit may lag on a loaded machine: 5 s at most
    check "no stage survives analyze after $delay s" sh -c "for i in 1 2 3 4 5 6 7 8 9 10; do pgrep -f '[s]eqlens .* -o $T/an/' >/dev/null || exit 0; sleep 0.5; done; exit 1"
done
"$S" analyze $M "$T/data.h5" -o "$T/an" --steps 4 --bootstrap 100 --threads 1 >/dev/null 2>&1
check "the resumed analyze completes" [ $? -eq 0 -a -s "$T/an/report.html" ]
for f in eval baseline ablate-family ablate-skip ablate-layer ablate-component reverse inspect attribute probe patch; do
    check "$f.json equals the uninterrupted run's" cmp -s "$T/an/$f.json" "$T/ref/$f.json"
done
check "no temporary file in the resumed directory" [ -z "$(find "$T/an" -name '*.tmp')" ]
summary
