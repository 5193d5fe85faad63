#!/bin/sh
# Hostile inputs to READ (issue 16, classes 5-8): every one is refused at
# once with exit 2 and one line naming it, within a time and memory bound
# (tests/hostile.sh): a FIFO, a device or a directory where a file is read,
# safetensors headers that declare more than the file holds, carry bytes
# that belong to nothing, or have 200,000 entries, and bad --pairs files.
. tests/shell.sh
. tests/hostile.sh
S=${SEQLENS:-bin/seqlens}
T=${BUILD:-build}/tests/inp
rm -rf "$T" && mkdir -p "$T"
M=tests/fixtures/mamba_mean_f32
DATA=$M/data.h5

# A copy of the model whose model.safetensors is replaced by $2 (a path).
model_with() {
    rm -rf "$T/$1" && mkdir -p "$T/$1" && cp "$M/config.json" "$T/$1/"
}
# The 8 little-endian bytes of $1, for a safetensors header length.
le64() {
    v=$1 i=0
    while [ $i -lt 8 ]; do
        printf "\\$(printf %03o $((v % 256)))"
        v=$((v / 256)) i=$((i + 1))
    done
}

# --- not regular files: refused before any open could block (10 s) ---
HOSTILE_SECONDS=10
mkfifo "$T/data.fifo"
hostile "FIFO as DATA" 2 "data.fifo: is a FIFO" - - -- "$S" eval $M "$T/data.fifo"
hostile "FIFO as baseline's DATA" 2 "data.fifo: is a FIFO" - - -- "$S" baseline "$T/data.fifo"
model_with fifo_st && mkfifo "$T/fifo_st/model.safetensors"
hostile "FIFO as model.safetensors" 2 "model.safetensors: is a FIFO" - - -- "$S" eval "$T/fifo_st" $DATA
model_with fifo_cfg && rm "$T/fifo_cfg/config.json" && mkfifo "$T/fifo_cfg/config.json" \
    && cp $M/model.safetensors "$T/fifo_cfg/"
hostile "FIFO as config.json" 2 "config.json: is a FIFO" - - -- "$S" info "$T/fifo_cfg"
hostile "/dev/zero as --pairs" 2 "/dev/zero: is a character device" "$T/p.json" - -- \
    "$S" patch $M $DATA --hook embed --pairs /dev/zero -o "$T/p.json"
hostile "FIFO as --pairs" 2 "data.fifo: is a FIFO" "$T/p.json" - -- \
    "$S" patch $M $DATA --hook embed --pairs "$T/data.fifo" -o "$T/p.json"
mkdir -p "$T/dir.h5"
hostile "directory as DATA" 2 "dir.h5: is a directory" - - -- "$S" eval $M "$T/dir.h5"
model_with dir_st && mkdir "$T/dir_st/model.safetensors"
hostile "directory as model.safetensors" 2 "model.safetensors: is a directory" - - -- "$S" info "$T/dir_st"
hostile "directory as --pairs" 2 "dir.h5: is a directory" "$T/p.json" - -- \
    "$S" patch $M $DATA --hook embed --pairs "$T/dir.h5" -o "$T/p.json"
hostile "a file as MODEL" 2 "is not a directory" - - -- "$S" info $M/config.json

# --- safetensors: the header length against the file's size, first ---
# 4.5 GB declared in a (sparse) 4.6 GB file: refused without reading it
model_with big && le64 4500000000 >"$T/big/model.safetensors" && truncate -s 4600000000 "$T/big/model.safetensors"
hostile "4.5 GB header length" 2 "header length 4500000000 is larger than 100000000 bytes" - - -- "$S" info "$T/big"
rm -f "$T/big/model.safetensors"
model_with short && { le64 4500000000; printf '{}'; } >"$T/short/model.safetensors"
hostile "4.5 GB header length in a 10-byte file" 2 "runs past the end of the file" - - -- "$S" info "$T/short"

# --- safetensors: bytes that belong to nothing ---
hl=$(od -An -tu8 -N8 $M/model.safetensors | tr -d ' ')
model_with garbage && cp $M/model.safetensors "$T/garbage/"
# the header ends in padding spaces: one becomes garbage after the JSON
printf x | dd of="$T/garbage/model.safetensors" bs=1 seek=$((8 + hl - 1)) conv=notrunc 2>/dev/null
hostile "garbage after the JSON header" 2 "after its JSON object that are not whitespace" - "$T/garbage/model.safetensors" -- \
    "$S" eval "$T/garbage" $DATA
model_with tail && cp $M/model.safetensors "$T/tail/" && printf 'TAIL' >>"$T/tail/model.safetensors"
hostile "bytes after the last tensor" 2 "4 bytes after the last tensor's data" - - -- "$S" eval "$T/tail" $DATA

# --- safetensors: 200,000 entries cost n log n, not n^2 (minutes) ---
HOSTILE_SECONDS=20
model_with many
awk 'BEGIN { printf "{"; for (i = 0; i < 200000; i++) printf "%s\"t%d\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[%d,%d]}", i ? "," : "", i, 4 * i, 4 * i + 4; printf "}" }' >"$T/many.json"
{ le64 "$(wc -c <"$T/many.json")"; cat "$T/many.json"; head -c 800000 /dev/zero; } >"$T/many/model.safetensors"
rm -f "$T/many.json"
hostile "200,000 header entries" 2 "missing tensor 'embedding.weight'" - - -- "$S" info "$T/many"
printf ',' | dd of="$T/many/model.safetensors" bs=1 seek=9 conv=notrunc 2>/dev/null
hostile "200,000 header entries, one bad" 2 "header is not a JSON object" - - -- "$S" info "$T/many"
rm -rf "$T/many"
HOSTILE_SECONDS=10

# --- config.json as Python's json reads it (class 7: no silent guess) ---
# json.load refuses text after the object and keeps the last of two equal
# keys; cJSON stopped at the object and kept the first
model_with cfg && cp $M/model.safetensors "$T/cfg/"
printf ' x' >>"$T/cfg/config.json"
hostile "text after config.json's object" 2 "config.json: text after the JSON object" - "$T/cfg/config.json" -- \
    "$S" eval "$T/cfg" $DATA
model_with cfg && cp $M/model.safetensors "$T/cfg/" && sed -i 's/^{/{"d_model": 32,/' "$T/cfg/config.json"
hostile "a key twice in config.json" 2 "config.json: key 'd_model' appears twice in one object" - "$T/cfg/config.json" -- \
    "$S" eval "$T/cfg" $DATA
model_with cfg && cp $M/model.safetensors "$T/cfg/" && sed -i 's/^{/{"names": {"a": "b", "a": "c"},/' "$T/cfg/config.json"
hostile "a key twice in a nested object" 2 "key 'a' appears twice" - "$T/cfg/config.json" -- "$S" info "$T/cfg"
model_with cfg && cp $M/model.safetensors "$T/cfg/" && printf '\000{"arch": "rnn"}' >>"$T/cfg/config.json"
hostile "a NUL byte in config.json" 2 "config.json: a NUL byte at offset" - "$T/cfg/config.json" -- "$S" info "$T/cfg"
# a bare Infinity (Python's json.dump of float('inf')) loads, and so analyze,
# which records the config, reads it too (its manifest used cJSON alone)
rm -rf "$T/inf" && cp -r tests/fixtures/checkpoints/hf_mamba2 "$T/inf"
tr -d '\n' <tests/fixtures/checkpoints/hf_mamba2/config.json | sed 's/{ *"__float__": *"Infinity" *}/Infinity/' >"$T/inf/config.json"
check "a config with a bare Infinity" grep -q ', *Infinity' "$T/inf/config.json"
"$S" analyze "$T/inf" "$T/inf/data.h5" -o "$T/inf_run" --steps 2 --bootstrap 10 --threads 1 >/dev/null 2>"$T/err"
check "analyze of a model whose config holds a bare Infinity: exit 0 ($(tail -n 1 "$T/err"))" [ $? -eq 0 ]
rm -rf "$T/inf" "$T/inf_run"

# --- result files with more rows than a figure can show (class 5) ---
# gnuplot took minutes over 200,000 bars and report's CKA loop was cubic:
# figures draw at most 256 of anything, every row stays in the tables
mkdir -p "$T/rep"
awk 'BEGIN { printf "{\"baseline_auc\": 0.9, \"n\": 10, \"mode\": \"mean\", \"results\": ["
    for (i = 0; i < 20000; i++) printf "%s{\"family\": \"f%d\", \"auc\": 0.9, \"delta_auc\": %g, \"ci95\": null}", i ? "," : "", i, (i % 977) * 1e-5 - 0.005
    printf "]}\n" }' >"$T/rep/ablate-family.json"
awk 'BEGIN { printf "{\"n\": 5, \"auc_a\": 0.9, \"auc_b\": 0.8, \"pearson_r\": 0.5, \"agreement\": 0.5, \"error_overlap\": 0.1, \"auc_ensemble\": 0.9, \"cka\": {\"pooled\": 0.5, \"layers\": ["
    for (i = 0; i < 300; i++) { printf "%s[", i ? "," : ""; for (j = 0; j < 300; j++) printf "%s0.5", j ? "," : ""; printf "]" }
    printf "]}}\n" }' >"$T/rep/compare.json"
start=$(date +%s)
timeout -s KILL 60 "$S" report "$T/rep" >/dev/null 2>"$T/err"
check "report of 20,000 family ablations and a 300 x 300 CKA grid: exit 0 ($(head -c 300 "$T/err"))" [ $? -eq 0 ]
took=$(($(date +%s) - start))
check "and within 20 s (took $took s)" [ $took -le 20 ]
if command -v gnuplot >/dev/null; then
    check "the ablation figure draws the 256 largest" grep -q "The 256 largest of 20000: Family ablation" "$T/rep/figures/ablate-family.gp"
    check "the CKA figure draws 256 x 256 cells" [ "$(grep -c '^[0-9]* [0-9]* 0.5$' "$T/rep/figures/cka.gp")" -eq 65536 ]
fi
check "the page's table keeps every row" [ "$(grep -o '>f[0-9]*<' "$T/rep/report.html" | sort -u | wc -l)" -eq 20000 ]
rm -rf "$T/rep"

# --- --pairs FILE: two indices a line, lines never split ---
printf '0 1\n2 x\n' >"$T/pairs.txt"
hostile "a pairs line that is not two integers" 2 "pairs.txt:2: expected two example indices" "$T/p.json" "$T/pairs.txt" -- \
    "$S" patch $M $DATA --hook embed --pairs "$T/pairs.txt" -o "$T/p.json"
printf '0 1 2\n' >"$T/pairs.txt"
hostile "three numbers on a pairs line" 2 "pairs.txt:1: expected two" "$T/p.json" - -- \
    "$S" patch $M $DATA --hook embed --pairs "$T/pairs.txt" -o "$T/p.json"
printf '0 99999999999999999999999\n' >"$T/pairs.txt"
hostile "an index past long" 2 "pairs.txt:1: expected two" "$T/p.json" - -- \
    "$S" patch $M $DATA --hook embed --pairs "$T/pairs.txt" -o "$T/p.json"
# 300 spaces: a 256-byte line buffer used to read "2 3" as a second pair
printf '0 1%300s2 3\n' '' >"$T/pairs.txt"
hostile "a long pairs line" 2 "pairs.txt:1: line longer than" "$T/p.json" - -- \
    "$S" patch $M $DATA --hook embed --pairs "$T/pairs.txt" -o "$T/p.json"
printf '0 1\0003 2\n' >"$T/pairs.txt"
hostile "a NUL in a pairs file" 2 "pairs.txt:1: a NUL byte" "$T/p.json" - -- \
    "$S" patch $M $DATA --hook embed --pairs "$T/pairs.txt" -o "$T/p.json"
# comments, blank lines and a last line without a newline still read
printf '# pairs\n0 1 # first\n\n  2 3' >"$T/pairs.txt"
"$S" patch $M $DATA --hook embed --pairs "$T/pairs.txt" -o "$T/ok.json" >/dev/null 2>"$T/err"
check "a pairs file with comments and no final newline: exit 0 ($(cat "$T/err"))" [ $? -eq 0 ]
check "its two pairs are read" grep -q '"n_pairs":[[:space:]]*2' "$T/ok.json"

rm -rf "$T"
summary
