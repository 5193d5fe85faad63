#!/bin/sh
# The README's first command (via make demo): analyses the two shipped
# example models, compares them, and writes one report per model and a
# summary across them into demo-report/.
set -eu
cd "$(dirname "$0")/.."
out=demo-report
# --force: a demo-report/ left by an older seqlens (whose analyze took other
# options) is redone rather than refused
sh scripts/analyze-runs.sh -o "$out" -a --force examples/data.h5 examples/transformer examples/mamba
mkdir -p "$out/compare"
bin/seqlens compare examples/transformer examples/mamba examples/data.h5 -o "$out/compare/compare.json" >/dev/null
bin/seqlens report "$out/compare" >/dev/null
echo "reports: $out/runs/transformer/report.html, $out/runs/mamba/report.html"
echo "across both: $out/summary.html; the two compared: $out/compare/report.html"
