#!/bin/sh
# Outputs (design.md section 1, Safety; issue 16 classes 3, 4, 8 and 9):
# - an output that names one of the command's inputs (the same file by
#   device and inode: itself, a hard link, a symlink) or lies inside MODEL
#   is refused with exit 2 before any work, and the input is unchanged;
# - a missing or read-only output directory is exit 1 naming it, before any
#   work (a job of minutes returns at once);
# - OUT.tmp is created exclusively: a symlink planted there is removed, its
#   target never written;
# - a full disk (a small tmpfs, as root) is exit 1 with the path and the
#   system's reason, no signal, nothing under OUT nor at OUT.tmp, for every
#   writer: HDF5 (capture, eval, reverse-test --scores, attribute --tokens,
#   gym), JSON, standard output, analyze and report;
# - a second analyze into the DIR of a running one is refused with exit 2,
#   and the first completes.
. tests/shell.sh
. tests/hostile.sh
S=${SEQLENS:-bin/seqlens}
T=${BUILD:-build}/tests/out
MNT="$T/full $T/ro"
cleanup() {
    for m in $MNT; do umount "$m" 2>/dev/null; done
    return 0
}
cleanup
chmod -R u+w "$T" 2>/dev/null
rm -rf "$T" && mkdir -p "$T"
trap cleanup EXIT
trap 'cleanup; exit 1' INT TERM

"$S" gym --task count --n 200 --len 64 --seed 1 -o "$T/data.h5" >/dev/null
cp -r tests/trained/mamba_count "$T/model"
M=$T/model
D=$T/data.h5
INPUTS="$D $M/config.json $M/model.safetensors"
# a job that takes minutes: refused outputs must stop it before it starts
SLOW="attribute $M $D --method ig --steps 100000 --threads 1"

# --- class 4: an output that is an input --------------------------------
# on copies (V, VM), restored before each case, so that a command that does
# destroy its input (the old code did) spoils no later case
V=$T/v.h5
VM=$T/vm
VIN="$V $VM/config.json $VM/model.safetensors"
restore() {
    cp "$D" "$V" # into the same inode: hard links to it stay
    rm -rf "$VM"
    cp -r tests/trained/mamba_count "$VM"
}
restore
hostile "eval -o DATA" 2 "$V" - "$VIN" -- "$S" eval $VM "$V" -o "$V"
check "eval -o DATA leaves no DATA.tmp" [ ! -e "$V.tmp" ]
restore
ln "$V" "$T/hard.h5"
hostile "eval -o a hard link to DATA" 2 "$V" - "$VIN" -- "$S" eval $VM "$V" -o "$T/hard.h5"
restore
ln -s v.h5 "$T/sym.h5"
hostile "eval -o a symlink to DATA" 2 "$V" - "$VIN" -- "$S" eval $VM "$V" -o "$T/sym.h5"
restore
hostile "capture -o DATA" 2 "$V" - "$VIN" -- "$S" capture $VM "$V" --hook logits -o "$V"
restore
hostile "reverse-test --scores DATA" 2 "$V" - "$VIN" -- "$S" reverse-test $VM "$V" --scores "$V"
restore
hostile "attribute --tokens DATA" 2 "$V" - "$VIN" -- "$S" attribute $VM "$V" --tokens "$V"
restore
hostile "baseline -o DATA" 2 "$V" - "$VIN" -- "$S" baseline "$V" -o "$V"
restore
hostile "compare -o MODEL_B's weights" 2 "model.safetensors" - "$VIN" -- \
    "$S" compare tests/trained/mamba_order $VM "$V" -o "$VM/model.safetensors"
restore
hostile "eval -o MODEL/model.safetensors" 2 "model.safetensors" - "$VIN" -- \
    "$S" eval $VM "$V" -o "$VM/model.safetensors"
restore
hostile "probe -o MODEL/config.json" 2 "config.json" - "$VIN" -- "$S" probe $VM "$V" -o "$VM/config.json"
restore
hostile "ablate -o MODEL/new.json" 2 "$VM" "$VM/new.json" "$VIN" -- \
    "$S" ablate $VM "$V" --family all -o "$VM/new.json"
restore
ln -s vm/config.json "$T/cfg.json"
hostile "inspect -o a symlink to MODEL/config.json" 2 "config.json" - "$VIN" -- "$S" inspect $VM "$V" -o "$T/cfg.json"
restore
printf '0 1\n2 3\n' >"$T/pairs.txt"
hostile "patch -o its --pairs file" 2 "pairs.txt" - "$VIN $T/pairs.txt" -- \
    "$S" patch $VM "$V" --hook 'blocks.0.resid_post' --pairs "$T/pairs.txt" -o "$T/pairs.txt"
restore
HOSTILE_SECONDS=10
hostile "a slow attribute -o MODEL/x.json stops at once" 2 "$VM" "$VM/x.json" "$VIN" -- \
    "$S" attribute $VM "$V" --method ig --steps 100000 --threads 1 -o "$VM/x.json"
HOSTILE_SECONDS=60
restore
ls -A "$VM" >"$T/vm-before"
VSUM=$(cat $VIN | cksum)
hostile "analyze -o MODEL" 2 "$VM" "$VM/report.html" "$VIN" -- "$S" analyze $VM "$V" -o "$VM" --steps 2
check "analyze -o MODEL made nothing in MODEL" sh -c "ls -A '$VM' | cmp -s - '$T/vm-before'"
# a subdirectory of MODEL is the user's own: the README's runs/042/seqlens/
"$S" analyze $VM "$V" -o "$VM/seqlens" --steps 2 --bootstrap 10 --threads 1 --examples 0:60 >/dev/null 2>&1
check "analyze -o MODEL/seqlens works" [ $? -eq 0 -a -s "$VM/seqlens/report.html" ]
check "and leaves MODEL's files as they were" [ "$(cat $VIN | cksum)" = "$VSUM" ]
rm -rf "$VM/seqlens"
mkdir -p "$T/holds"
cp "$D" "$T/holds/scores.h5"
hostile "analyze into a DIR whose scores.h5 is the data" 2 "scores.h5" "$T/holds/report.html" "$INPUTS $T/holds/scores.h5" -- \
    "$S" analyze $M "$T/holds/scores.h5" -o "$T/holds" --steps 2
mkfifo "$T/fifo"
hostile "gym -o a FIFO" 2 "$T/fifo" - - -- "$S" gym --task count --n 10 --len 40 -o "$T/fifo"
check "the FIFO is still there" [ -p "$T/fifo" ]
hostile "eval -o a directory" 2 "$T/holds" - "$INPUTS" -- "$S" eval $M "$D" -o "$T/holds"
hostile "eval -o ''" 2 "-o '': an empty output file name" - "$INPUTS" -- "$S" eval $M "$D" -o ''
hostile "attribute --tokens ''" 2 "--tokens ''" - "$INPUTS" -- "$S" attribute $M "$D" --tokens ''
hostile "analyze -o ''" 2 "-o '': an empty output directory name" - "$INPUTS" -- "$S" analyze $M "$D" -o ''
hostile "one file named as two outputs" 2 "$T/two" "$T/two" "$INPUTS" -- \
    "$S" reverse-test $M "$D" -o "$T/two" --scores "$T/two"

# --- class 8: the output directory is missing or read-only, found at once ---
HOSTILE_SECONDS=10
hostile "a slow attribute into a missing directory" 1 "$T/nosuch" "$T/nosuch/a.json" "$INPUTS" -- \
    "$S" $SLOW -o "$T/nosuch/a.json"
hostile "a slow attribute --tokens into a missing directory" 1 "$T/nosuch" "$T/nosuch/a.h5" "$INPUTS" -- \
    "$S" $SLOW --tokens "$T/nosuch/a.h5"
hostile "capture into a missing directory" 1 "$T/nosuch" "$T/nosuch/a.h5" "$INPUTS" -- \
    "$S" capture $M "$D" --hook logits -o "$T/nosuch/a.h5"
hostile "analyze into a missing parent" 1 "$T/nosuch" "$T/nosuch/run/report.html" "$INPUTS" -- \
    "$S" analyze $M "$D" -o "$T/nosuch/run" --steps 2
hostile "-o under a file" 1 "$D" "$D/x.json" "$INPUTS" -- "$S" $SLOW -o "$D/x.json"
mkdir -p "$T/ro"
# with a result in it, so that report has something to draw
if [ "$(id -u)" -eq 0 ]; then
    # root writes where a mode forbids it: a read-only mount is what stops it
    mount -t tmpfs -o size=64k tmpfs "$T/ro" 2>/dev/null || MNT_FAILED=1
fi
"$S" ablate $M "$D" --family all --bootstrap 0 -o "$T/ro/ablate-family.json" >/dev/null
if [ "$(id -u)" -eq 0 ]; then
    [ -z "${MNT_FAILED:-}" ] && { mount -o remount,ro "$T/ro" || MNT_FAILED=1; }
else
    chmod 555 "$T/ro"
fi
if [ -z "${MNT_FAILED:-}" ]; then
    hostile "a slow attribute into a read-only directory" 1 "$T/ro" "$T/ro/a.json" "$INPUTS" -- \
        "$S" $SLOW -o "$T/ro/a.json"
    hostile "gym into a read-only directory" 1 "$T/ro" "$T/ro/g.h5" - -- \
        "$S" gym --task count --n 100000 --len 512 -o "$T/ro/g.h5"
    hostile "analyze into a read-only directory" 1 "$T/ro" "$T/ro/run/report.html" "$INPUTS" -- \
        "$S" analyze $M "$D" -o "$T/ro/run" --steps 2
    hostile "report of a read-only directory" 1 "$T/ro" "$T/ro/report.html" - -- "$S" report "$T/ro"
else
    echo "SKIPPED: read-only directory cases (mount failed)"
fi
cleanup
chmod 755 "$T/ro"
HOSTILE_SECONDS=60

# --- class 4: OUT.tmp is created exclusively --------------------------------
echo precious >"$T/victim"
VICTIM=$(cd "$T" && pwd)/victim
planted() { # description, output path, then the command (which must succeed)
    p_desc=$1 p_out=$2
    shift 2
    rm -f "$p_out" "$p_out.tmp"
    ln -s "$VICTIM" "$p_out.tmp"
    "$@" >/dev/null 2>"$T/planted.err"
    p_status=$?
    check "$p_desc with a symlink at OUT.tmp: exit 0, got $p_status ($(head -c 200 "$T/planted.err"))" [ $p_status -eq 0 ]
    check "$p_desc: the symlink's target is unchanged" [ "$(cat "$T/victim")" = precious ]
    check "$p_desc: the output is written" [ -s "$p_out" -a ! -L "$p_out" ]
    check "$p_desc: nothing left at OUT.tmp" [ ! -e "$p_out.tmp" -a ! -L "$p_out.tmp" ]
}
planted "eval -o (HDF5)" "$T/s.h5" "$S" eval $M "$D" -o "$T/s.h5"
planted "capture -o" "$T/c.h5" "$S" capture $M "$D" --hook logits -o "$T/c.h5"
planted "gym -o" "$T/g.h5" "$S" gym --task count --n 50 --len 40 -o "$T/g.h5"
planted "reverse-test --scores" "$T/r.h5" "$S" reverse-test $M "$D" --scores "$T/r.h5"
mkdir -p "$T/run"
planted "ablate -o (JSON)" "$T/run/ablate-family.json" \
    "$S" ablate $M "$D" --family all --bootstrap 0 -o "$T/run/ablate-family.json"
planted "report (report.html)" "$T/run/report.html" "$S" report "$T/run"
if [ -s "$T/run/figures/ablate-family.png" ]; then
    planted "report (a figure gnuplot draws)" "$T/run/figures/ablate-family.png" "$S" report "$T/run"
    planted "report (a figure's script)" "$T/run/figures/ablate-family.gp" "$S" report "$T/run"
fi
mkdir -p "$T/an/logs"
ln -s "$VICTIM" "$T/an/eval.json.tmp"
ln -s "$VICTIM" "$T/an/logs/eval.log"
ln -s "$VICTIM" "$T/an/analyze.json.tmp"
"$S" analyze $M "$D" -o "$T/an" --steps 2 --bootstrap 10 --threads 1 --examples 0:60 >/dev/null 2>"$T/an.err"
check "analyze with symlinks at its temporary files and logs: exit 0 ($(head -c 200 "$T/an.err"))" [ $? -eq 0 ]
check "analyze: the symlinks' target is unchanged" [ "$(cat "$T/victim")" = precious ]
check "analyze: eval.json and its log are files of their own" [ -s "$T/an/eval.json" -a ! -L "$T/an/logs/eval.log" ]

# --- the page a directory command writes: what stands at its name ---------
# a directory at report.html failed report with exit 1 after all its work; a
# FIFO there was replaced without a word; a file at figures/ lost every figure
# to warnings while report exited 0
mkdir -p "$T/page/report.html"
cp "$T/an"/*.json "$T/page/"
hostile "report where DIR/report.html is a directory" 2 "report.html: is a directory" - - -- "$S" report "$T/page"
rm -rf "$T/page/report.html" "$T/page/figures" && mkfifo "$T/page/report.html"
hostile "report where DIR/report.html is a FIFO" 2 "report.html: exists and is not a regular file" - - -- "$S" report "$T/page"
check "the FIFO is still there" [ -p "$T/page/report.html" ]
rm -rf "$T/page/report.html" "$T/page/figures" && touch "$T/page/figures"
hostile "report where DIR/figures is a file" 2 "figures: exists and is not a directory" "$T/page/report.html" - -- \
    "$S" report "$T/page"
mkdir -p "$T/page2/report.html"
hostile "analyze where DIR/report.html is a directory, before any stage" 2 "report.html: is a directory" "$T/page2/eval.json" \
    "$INPUTS" -- "$S" analyze $M "$D" -o "$T/page2" --steps 2
mkdir -p "$T/sum/summary.json"
hostile "summarize where OUT/summary.json is a directory" 2 "summary.json: is a directory" "$T/sum/summary.html" - -- \
    "$S" summarize "$T/an" -o "$T/sum"

# --- class 9: one analyze at a time into a DIR ------------------------------
"$S" gym --task count --n 400 --len 96 --seed 9 -o "$T/big.h5" >/dev/null
"$S" analyze $M "$T/big.h5" -o "$T/lock" --steps 4 --bootstrap 100 --threads 1 >/dev/null 2>"$T/first.err" &
first=$!
i=0
while [ ! -e "$T/lock/analyze.json" ] && [ $i -lt 200 ]; do
    sleep 0.05
    i=$((i + 1))
done
hostile "a second analyze into a running one's DIR" 2 "$T/lock" - "$INPUTS $T/big.h5" -- \
    "$S" analyze $M "$T/big.h5" -o "$T/lock" --steps 4 --bootstrap 100 --threads 1
check "the first analyze was still running (else the lock was not tested)" kill -0 $first
wait $first
check "the first analyze completes ($(tail -n 1 "$T/first.err"))" [ $? -eq 0 -a -s "$T/lock/report.html" ]
"$S" analyze $M "$T/big.h5" -o "$T/lock" --steps 4 --bootstrap 100 --threads 1 >/dev/null 2>"$T/again.err"
check "a later analyze of the same DIR resumes (the lock went with the first)" [ $? -eq 0 ]
# 11 stages: a Mamba model's include ablate-skip
check "and keeps every stage" [ "$(grep -c 'done earlier, kept' "$T/again.err")" -eq 11 ]
"$S" report "$T/lock" >/dev/null 2>&1
check "report DIR works beside DIR/.lock" [ $? -eq 0 ]
mkdir -p "$T/lock2"
ln -s "$VICTIM" "$T/lock2/.lock"
hostile "analyze where DIR/.lock is a symlink" 1 ".lock" "$T/lock2/report.html" "$INPUTS" -- \
    "$S" analyze $M "$D" -o "$T/lock2" --steps 2
check "the .lock symlink's target is unchanged" [ "$(cat "$T/victim")" = precious ]

# --- class 3: writes that fail -------------------------------------------
# fails_writing DESC OUT NAME REASON -- COMMAND...: COMMAND fails with exit
# 1, one line naming NAME (the file it was writing) and REASON (the
# system's), and leaves nothing at OUT nor OUT.tmp
fails_writing() {
    f_desc=$1 f_out=$2 f_name=$3 f_reason=$4
    shift 5
    hostile "$f_desc" 1 "$f_reason" "$f_out" "$INPUTS" -- \
        sh -c '"$@" 2>"$0"; s=$?; cat "$0" >&2; exit $s' "$T/fail.err" "$@"
    check "$f_desc: the message names $f_name" grep -qF "$f_name" "$T/fail.err"
}
# without root: a file-size limit (ulimit -f, in blocks of 512 or 1024
# bytes) fails a write the way a full disk does, with EFBIG
limited() { # DESC OUT BLOCKS -- COMMAND...
    l_desc=$1 l_out=$2 l_blocks=$3
    shift 4
    fails_writing "$l_desc under ulimit -f $l_blocks" "$l_out" "$l_out" "File too large" -- \
        sh -c 'ulimit -f "$0" && exec "$@"' "$l_blocks" "$@"
}
limited "eval -o" "$T/l.h5" 4 -- "$S" eval $M "$D" -o "$T/l.h5"
limited "capture -o" "$T/l.h5" 40 -- "$S" capture $M "$D" --hook 'blocks.*.resid_post' --threads 1 -o "$T/l.h5"
limited "reverse-test --scores" "$T/l.h5" 4 -- "$S" reverse-test $M "$D" --scores "$T/l.h5"
limited "attribute --tokens" "$T/l.h5" 16 -- "$S" attribute $M "$D" --tokens "$T/l.h5"
limited "gym -o" "$T/l.h5" 16 -- "$S" gym --task count --n 2000 --len 64 -o "$T/l.h5"
limited "inspect -o (JSON)" "$T/l.json" 1 -- "$S" inspect $M "$D" -o "$T/l.json"
rm -f "$T/run/report.html"
limited "report" "$T/run/report.html" 16 -- "$S" report "$T/run"

# a full disk: small tmpfs mounts, as root
F=$T/full
mkdir -p "$F"
if [ "$(id -u)" -ne 0 ] || ! mount -t tmpfs -o size=200k tmpfs "$F" 2>/dev/null; then
    echo "SKIPPED: full-disk cases need root (and a tmpfs mount)"
    summary
    exit $?
fi
fill() { # leaves $1 KB free on the tmpfs at $F
    avail=$(df -k "$F" | awk 'NR == 2 {print $4}')
    dd if=/dev/zero of="$F/filler" bs=1k count=$((avail - $1)) 2>/dev/null
}
full() { # DESC OUT NAME -- COMMAND...
    u_desc=$1 u_out=$2 u_name=$3
    shift 3
    fails_writing "$u_desc" "$u_out" "$u_name" "No space left on device" "$@"
}
full "capture on an empty 200 KB tmpfs" "$F/acts.h5" "$F/acts.h5" -- \
    "$S" capture $M "$D" --hook 'blocks.*.resid_post' --threads 1 -o "$F/acts.h5"
for free in 0 4 8; do
    rm -rf "${F:?}"/*
    fill $free
    full "eval -o, $free KB free" "$F/s.h5" "$F/s.h5" -- "$S" eval $M "$D" -o "$F/s.h5"
    full "reverse-test --scores, $free KB free" "$F/r.h5" "$F/r.h5" -- "$S" reverse-test $M "$D" --scores "$F/r.h5"
    full "attribute --tokens, $free KB free" "$F/t.h5" "$F/t.h5" -- "$S" attribute $M "$D" --tokens "$F/t.h5"
    full "gym -o, $free KB free" "$F/g.h5" "$F/g.h5" -- "$S" gym --task count --n 400 --len 64 -o "$F/g.h5"
done
rm -rf "${F:?}"/*
fill 0
full "ablate -o (JSON) on a full disk" "$F/a.json" "$F/a.json" -- \
    "$S" ablate $M "$D" --family all --bootstrap 0 -o "$F/a.json"
full "eval's JSON on standard output on a full disk" - "standard output" -- \
    sh -c '"$@" >"$0"' "$F/e.json" "$S" eval $M "$D"
rm -rf "${F:?}"/*
full "gym -o on an empty 200 KB tmpfs" "$F/g.h5" "$F/g.h5" -- "$S" gym --task count --n 2000 --len 64 -o "$F/g.h5"
# analyze prints a progress line per finished stage: its last line says
# why it stopped, wherever the disk filled up
for free in 0 16 60; do
    rm -rf "${F:?}"/* "$F/run"
    fill $free
    "$S" analyze $M "$D" -o "$F/run" --steps 2 --bootstrap 20 --threads 1 >/dev/null 2>"$T/full.err"
    status=$?
    check "analyze, $free KB free: exit 1, got $status" [ $status -eq 1 ]
    check "analyze, $free KB free: the last line names the file and the reason ($(tail -n 1 "$T/full.err"))" \
        sh -c 'tail -n 1 "$0" | grep -F "$1" | grep -qF "No space left on device"' "$T/full.err" "$F/run/"
    check "analyze, $free KB free: no report.html, no temporary file" \
        [ ! -e "$F/run/report.html" -a -z "$(find "$F" -name '*.tmp')" ]
done
# report: the results fit, the page does not
for free in 0 24; do
    rm -rf "${F:?}"/*
    cp "$T/an"/*.json "$F/"
    fill $free
    full "report, $free KB free" "$F/report.html" "$F/" -- "$S" report "$F"
    check "report, $free KB free: no figure left half-drawn" [ -z "$(find "$F" -name '*.tmp')" ]
done
rm -rf "${F:?}"/*
full "summarize on a full disk" "$F/sum/summary.html" "$F/sum/" -- sh -c 'dd if=/dev/zero of="$0/filler" bs=1k 2>/dev/null; "$@"' "$F" "$S" summarize "$T/an" -o "$F/sum"
summary
