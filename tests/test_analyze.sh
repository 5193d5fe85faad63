#!/bin/sh
# seqlens analyze, report and summarize end to end on the shipped example
# and the trained gym models: outputs, verdicts against the planted truth,
# resume after an interrupt, refusal of other inputs, bad input, and batch
# analysis over three checkpoints.
. tests/shell.sh
S=${SEQLENS:-bin/seqlens}
T=${BUILD:-build}/tests/analyze
rm -rf "$T" && mkdir -p "$T"
DATA=examples/data.h5

# --- a full run ---
"$S" analyze examples/transformer $DATA -o "$T/tf" --steps 8 --sample 150 >"$T/out" 2>"$T/err"
check "analyze exits 0" [ $? -eq 0 ]
# --sample: inspect, attribute and patch on 150 of the 400 examples, the ablations on all
check "the sampled stages' commands carry --sample" [ "$(grep '"command":.*--sample 150' "$T/tf/analyze.json" | grep -c 'seqlens inspect\|seqlens attribute\|seqlens patch')" -eq 3 ]
check "no other stage's command does" [ "$(grep -c '"command":.*--sample' "$T/tf/analyze.json")" -eq 3 ]
check "attribute ran on the sample" sh -c "tr -d ' \t\n' <'$T/tf/attribute.json' | grep -q '\"n\":150,\"sampled_from\":400'"
check "attribute's families carry intervals" sh -c "tr -d ' \t\n' <'$T/tf/attribute.json' | grep -q '\"attribution_share_ci95\":\[0\.[0-9]'"
check "ablate kept every example" sh -c "tr -d ' \t\n' <'$T/tf/ablate-family.json' | grep -q '\"n\":400'"
check "the report says which results are of a sample" [ "$(grep -c 'On a seeded sample of 150 of the 400 examples' "$T/tf/report.html")" -eq 3 ]
for f in analyze.json eval.json scores.h5 baseline.json ablate-family.json ablate-layer.json ablate-component.json \
    reverse.json reverse-scores.h5 inspect.json attribute.json probe.json patch.json report.html; do
    check "analyze wrote $f" [ -s "$T/tf/$f" ]
done
check "no temporary file left" [ -z "$(find "$T/tf" -name '*.tmp')" ]
check "a progress line per stage and the report" [ "$(grep -c '^\[[0-9]*/11\]' "$T/err")" -eq 11 ]
check "stdout names the report" grep -q "wrote $T/tf/report.html" "$T/out"
for fig in baselines ablate-family ablate-layer ablate-component reverse inspect-attention-mass inspect-attention attribution \
    attribution-profile probe patch; do
    check "figure $fig drawn (png, svg, script)" [ -s "$T/tf/figures/$fig.png" -a -s "$T/tf/figures/$fig.svg" -a -s "$T/tf/figures/$fig.gp" ]
    check "figure $fig embedded in the page" grep -q "alt=\"[^\"]*\" src=\"data:image/png;base64,iVBOR" "$T/tf/report.html"
done
check "svg is svg" grep -q '<svg' "$T/tf/figures/ablate-family.svg"
check "eleven figures embedded" [ "$(grep -o 'data:image/png;base64' "$T/tf/report.html" | wc -l)" -eq 11 ]
# the planted truth of examples/data.h5: marker carries the label, order does
# not matter, and this Transformer has no positional encoding
check "family verdict names marker" grep -q "Relies on one family: &#39;marker&#39;\|Relies on one family: 'marker'" "$T/tf/report.html"
check "reversal verdict: order-insensitive" grep -q "Order-insensitive: reverse r = 1.000" "$T/tf/report.html"
check "the data's Bayes AUC is on the page" grep -q "best achievable AUC at 0.983" "$T/tf/report.html"
check "the commands are on the page" grep -q "seqlens ablate examples/transformer examples/data.h5 --family all" "$T/tf/report.html"
check "the patching section is on the page" grep -q '<section id="patching">' "$T/tf/report.html"
check "the component section is on the page" grep -q '<section id="component">' "$T/tf/report.html"
check "versions are on the page" grep -q "liblinear" "$T/tf/report.html"
check "the stage commands are real commands" sh -c "grep -o '\"command\":[[:space:]]*\"seqlens eval[^\"]*\"' '$T/tf/analyze.json' | grep -q 'scores.h5'"

# --- a rerun keeps every stage ---
cp "$T/tf/ablate-family.json" "$T/family-before.json"
touch -d '2000-01-01' "$T/tf/ablate-family.json"
"$S" analyze examples/transformer $DATA -o "$T/tf" --steps 8 --sample 150 >/dev/null 2>"$T/err2"
check "rerun exits 0" [ $? -eq 0 ]
check "rerun keeps all 10 stages" [ "$(grep -c 'done earlier, kept' "$T/err2")" -eq 10 ]
check "rerun did not rewrite a result" [ "$(stat -c %Y "$T/tf/ablate-family.json")" -eq "$(date -d 2000-01-01 +%s)" ]

# --- other options into the same directory: refused, then --force ---
"$S" analyze examples/transformer $DATA -o "$T/tf" --steps 4 >/dev/null 2>"$T/err3"
check "other options are refused with exit 2" [ $? -eq 2 ]
check "the refusal is one line naming analyze.json" sh -c "[ \$(wc -l <'$T/err3') -eq 1 ] && grep -q 'analyze.json: .*--force' '$T/err3'"
"$S" analyze examples/transformer $DATA -o "$T/tf" --steps 8 --force >/dev/null 2>"$T/err4"
check "--force redoes every stage" [ "$(grep -c 'done in' "$T/err4")" -eq 11 ]
check "the same seed gives the same family ablation" cmp -s "$T/family-before.json" "$T/tf/ablate-family.json"

# --- interrupted, then resumed ---
"$S" analyze examples/mamba $DATA -o "$T/int" --steps 64 >/dev/null 2>"$T/int-err" &
pid=$!
i=0
while [ ! -e "$T/int/logs/attribute.log" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
kill -INT $pid
wait $pid
st=$?
check "an interrupted analyze exits 130" [ $st -eq 130 ]
check "it says how to resume" grep -q "interrupted during attribute; run the same command again" "$T/int-err"
check "nothing half-written after the interrupt" [ -z "$(find "$T/int" -name '*.tmp')" -a ! -e "$T/int/attribute.json" ]
check "finished stages are recorded" grep -q '"status":[[:space:]]*"done"' "$T/int/analyze.json"
"$S" analyze examples/mamba $DATA -o "$T/int" --steps 64 >/dev/null 2>"$T/int-err2"
check "the resumed run completes" [ $? -eq 0 -a -s "$T/int/report.html" -a -s "$T/int/attribute.json" ]
check "the resumed run kept the 8 stages done before" [ "$(grep -c 'done earlier, kept' "$T/int-err2")" -eq 8 ]
# Mamba's extra stage: ablate --family all --mode skip, with its section
check "analyze ran skip on the Mamba model" sh -c "tr -d ' \t\n' <'$T/int/ablate-skip.json' | grep -q '\"mode\":\"skip\"'"
check "the skip command is on the page" grep -q "seqlens ablate examples/mamba examples/data.h5 --family all .*--mode skip" "$T/int/report.html"
check "the skip section is on the page" grep -q '<section id="skip">' "$T/int/report.html"
check "and its figure" [ -s "$T/int/figures/ablate-skip.png" ]
check "a Transformer has no skip stage" [ ! -e "$T/tf/ablate-skip.json" -a -z "$(grep ablate-skip "$T/tf/analyze.json")" ]

# --- bad input: exit 2, one line, nothing written ---
"$S" analyze examples/nowhere $DATA -o "$T/bad" 2>"$T/bad-err"
check "a missing model exits 2" [ $? -eq 2 ]
check "and writes nothing" [ ! -e "$T/bad" ]
check "with one line" [ "$(wc -l <"$T/bad-err")" -eq 1 ]
"$S" analyze examples/transformer $DATA 2>/dev/null
check "analyze without -o exits 2" [ $? -eq 2 ]
mkdir -p "$T/corrupt" && echo '{"n": 3,' >"$T/corrupt/eval.json"
"$S" report "$T/corrupt" 2>"$T/corrupt-err"
check "report on corrupt JSON exits 2" [ $? -eq 2 ]
check "naming the file" grep -q "corrupt/eval.json: not valid JSON" "$T/corrupt-err"
check "and writes no page" [ ! -e "$T/corrupt/report.html" ]
mkdir -p "$T/empty"
"$S" report "$T/empty" 2>/dev/null
check "report on a directory without results exits 2" [ $? -eq 2 ]

# --- patch and component ablation: bad input is exit 2 with one line, no output ---
printf '0 1\n2 x\n' >"$T/pairs.txt"
bad() { # description, needle, then the seqlens arguments
    desc=$1 needle=$2
    shift 2
    "$S" "$@" -o "$T/bad.json" >/dev/null 2>"$T/bad-err"
    st=$?
    check "$desc: exit 2 ($st)" [ $st -eq 2 ]
    check "$desc: one line naming it" sh -c "[ \$(wc -l <'$T/bad-err') -eq 1 ] && grep -q -- '$needle' '$T/bad-err'"
    check "$desc: no output" [ ! -e "$T/bad.json" ]
}
bad "a malformed pairs file" "pairs.txt:2: expected two example indices" patch examples/mamba $DATA --hook embed --pairs "$T/pairs.txt"
printf '0 400\n' >"$T/pairs-past.txt"
bad "a pair past the data" "pairs-past.txt:1:" patch examples/mamba $DATA --hook embed --pairs "$T/pairs-past.txt"
bad "an attention pattern" "matches no patchable hook point" patch examples/transformer $DATA --hook 'blocks.0.attn.pattern'
bad "a position past the width" "expected all, last or integers in" patch examples/mamba $DATA --hook embed --positions 99
bad "a pairing that does not exist" "--pairing" patch examples/mamba $DATA --hook embed --pairing nearest
bad "a Mamba component on a Transformer" "a transformer has attn and mlp" ablate examples/transformer $DATA --component conv
bad "--component with --family" "give one of" ablate examples/mamba $DATA --component gate --family all
printf '0 1\n1 0\n' >"$T/pairs2.txt"
"$S" patch examples/mamba $DATA --hook embed final --positions 0,-1 --pairs "$T/pairs2.txt" -o "$T/patch.json" >/dev/null
check "patch with a pairs file writes 2 hooks x 2 positions" [ "$(grep -c '"hook"' "$T/patch.json")" -eq 4 ]
check "and counts its two pairs" grep -q '"n_pairs":[[:space:]]*2,' "$T/patch.json"

# --- without gnuplot: tables and verdicts, one warning ---
cp -r "$T/tf" "$T/nognuplot" && rm -rf "$T/nognuplot/figures" "$T/nognuplot/report.html"
SEQLENS_GNUPLOT= "$S" report "$T/nognuplot" >/dev/null 2>"$T/nog-err"
check "report without gnuplot exits 0" [ $? -eq 0 ]
check "with exactly one warning line" sh -c "[ \$(wc -l <'$T/nog-err') -eq 1 ] && grep -q 'warning: gnuplot not found' '$T/nog-err'"
check "and a page with its verdicts" grep -q "Order-insensitive" "$T/nognuplot/report.html"

# --- batch analysis over three checkpoints, and the summary ---
sh scripts/analyze-runs.sh -o "$T/batch" -j 2 -a "--steps 4 --bootstrap 200 --threads 1" tests/trained/count_test.h5 \
    tests/trained/tf_count tests/trained/mamba_count tests/trained/tf_order >"$T/batch-out" 2>&1
check "analyze-runs exits 0" [ $? -eq 0 ]
check "a report per run" [ -s "$T/batch/runs/tf_count/report.html" -a -s "$T/batch/runs/mamba_count/report.html" -a -s "$T/batch/runs/tf_order/report.html" ]
check "summary.csv: a header and three rows" [ "$(wc -l <"$T/batch/summary.csv")" -eq 4 ]
check "the count models' top family is marker" [ "$(grep -c '^"[a-z]*_count",.*,"marker",' "$T/batch/summary.csv")" -eq 2 ]
check "the summary page links each report" grep -q 'href="runs/tf_order/report.html"' "$T/batch/summary.html"
check "four summary figures" [ "$(grep -o 'data:image/png;base64' "$T/batch/summary.html" | wc -l)" -eq 4 ]
check "summary.json parses as three runs" sh -c "grep -c '\"run\":' '$T/batch/summary.json' | grep -qx 3"
sh scripts/analyze-runs.sh -o "$T/batch" tests/trained/count_test.h5 tests/trained/tf_count examples/nowhere >/dev/null 2>&1
check "a run that is not a model directory is refused with exit 2" [ $? -eq 2 ]
"$S" summarize "$T/batch/logs" -o "$T/sum-bad" 2>/dev/null
check "summarize of a directory without results exits 2" [ $? -eq 2 ]
summary
