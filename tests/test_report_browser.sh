#!/bin/sh
# The report as a person sees it: headless Chromium loads report.html and
# the cross-run summary; every embedded figure must decode (the page's own
# script sets data-figures="LOADED/TOTAL" on <body> once loaded), and a
# full-page screenshot is kept in build/tests/browser/ for a person to look
# at. Without Chromium this test says so and checks nothing, unless
# SEQLENS_REQUIRE_BROWSER=1 (CI sets it), when that is a failure.
. tests/shell.sh
S=${SEQLENS:-bin/seqlens}
T=${BUILD:-build}/tests/browser
browser=""
for b in chromium chromium-browser google-chrome; do
    command -v $b >/dev/null 2>&1 && { browser=$b; break; }
done
if [ -z "$browser" ]; then
    echo "SKIP: no chromium on PATH (Debian: apt-get install chromium); the report was not checked in a browser"
    check "a browser is installed (SEQLENS_REQUIRE_BROWSER=1)" [ "${SEQLENS_REQUIRE_BROWSER:-0}" != 1 ]
    summary
    exit
fi
rm -rf "$T" && mkdir -p "$T"
"$S" analyze examples/mamba examples/data.h5 -o "$T/mamba" --steps 4 >/dev/null 2>&1
check "analyze for the browser test" [ -s "$T/mamba/report.html" ]
"$S" summarize "$T/mamba" -o "$T/summary" >/dev/null 2>&1
check "summarize for the browser test" [ -s "$T/summary/summary.html" ]
abs=$(cd "$T" && pwd)
run_browser() { # output option, page
    timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars \
        --user-data-dir="$abs/profile" --window-size=1200,9000 "$1" "file://$abs/$2" 2>/dev/null
}
want=$(grep -o 'data:image/png;base64' "$T/mamba/report.html" | wc -l)
# 12 with the skip ablation of a Mamba model
check "the report embeds its 12 figures" [ "$want" -eq 12 ]
run_browser --dump-dom mamba/report.html >"$T/dom.html"
check "Chromium decoded every figure of the report" grep -q "<body data-figures=\"$want/$want\">" "$T/dom.html"
check "the verdicts are in the rendered page" grep -q 'class="verdict"' "$T/dom.html"
run_browser --dump-dom summary/summary.html >"$T/summary-dom.html"
check "Chromium decoded every figure of the summary" grep -q '<body data-figures="4/4">' "$T/summary-dom.html"
(cd "$T" && run_browser --screenshot="$abs/report.png" mamba/report.html >/dev/null)
check "a screenshot was taken" [ -s "$T/report.png" ]
# PNG signature, then the IHDR width and height (big-endian) at bytes 16-23
sig=$(od -An -tx1 -N8 "$T/report.png" | tr -d ' \n')
check "the screenshot is a PNG" [ "$sig" = 89504e470d0a1a0a ]
width=$(od -An -tu1 -j16 -N4 "$T/report.png" | awk '{print $1*16777216+$2*65536+$3*256+$4}')
check "the screenshot is the window's width" [ "$width" -eq 1200 ]
# a blank or unstyled page compresses to a few kB; figures and tables do not
check "the screenshot holds the figures (over 200 kB)" [ "$(stat -c %s "$T/report.png")" -gt 200000 ]
summary
