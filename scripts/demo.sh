#!/bin/sh
# Runs the shipped examples through every command that exists so far and
# leaves the results in demo-report/.
set -eu
cd "$(dirname "$0")/.."
out=demo-report
mkdir -p "$out"
for m in transformer mamba; do
    bin/seqlens info examples/$m > "$out/$m-info.txt"
    bin/seqlens eval examples/$m examples/data.h5 -o "$out/$m-scores.h5" > "$out/$m-eval.json"
    bin/seqlens capture examples/$m examples/data.h5 --hook 'blocks.*.resid_post' pooled -o "$out/$m-acts.h5"
    bin/seqlens reverse-test examples/$m examples/data.h5 -o "$out/$m-reverse.json" > /dev/null
    bin/seqlens ablate examples/$m examples/data.h5 --family all -o "$out/$m-ablate-family.json" > /dev/null
    bin/seqlens ablate examples/$m examples/data.h5 --layer all -o "$out/$m-ablate-layer.json" > /dev/null
    bin/seqlens inspect examples/$m examples/data.h5 -o "$out/$m-inspect.json" > /dev/null
    bin/seqlens probe examples/$m examples/data.h5 --site tokens -o "$out/$m-probe.json" > /dev/null 2>&1
    bin/seqlens attribute examples/$m examples/data.h5 --method ig --steps 16 -o "$out/$m-attribute.json" > /dev/null
    echo "$m: $(cat "$out/$m-eval.json")"
done
bin/seqlens compare examples/transformer examples/mamba examples/data.h5 -o "$out/compare.json" > /dev/null
echo "wrote $out/: *-info.txt, *-eval.json, *-scores.h5, *-acts.h5, *-reverse.json, *-ablate-{family,layer}.json, *-inspect.json, *-probe.json, *-attribute.json, compare.json"
