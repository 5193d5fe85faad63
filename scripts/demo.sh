#!/bin/sh
# The README's first command (via make demo): analyses the three shipped
# example models (a Transformer, a Mamba, a Mamba-2), compares them in
# pairs, and writes one report per model and a summary across them into
# demo-report/.
set -eu
cd "$(dirname "$0")/.."
out=demo-report
# --force: a demo-report/ left by an older seqlens (whose analyze took other
# options) is redone rather than refused
sh scripts/analyze-runs.sh -o "$out" -a --force examples/data.h5 examples/transformer examples/mamba examples/mamba2
# each pair compared: compare/ (Transformer, Mamba), compare-mamba2/ (Mamba, Mamba-2)
for pair in "compare transformer mamba" "compare-mamba2 mamba mamba2"; do
    set -- $pair
    mkdir -p "$out/$1"
    bin/seqlens compare "examples/$2" "examples/$3" examples/data.h5 -o "$out/$1/compare.json" >/dev/null
    bin/seqlens report "$out/$1" >/dev/null
done
echo "reports: $out/runs/transformer/report.html, $out/runs/mamba/report.html, $out/runs/mamba2/report.html"
echo "across the three: $out/summary.html; compared: $out/compare/report.html (Transformer, Mamba),"
echo "$out/compare-mamba2/report.html (Mamba, Mamba-2)"
