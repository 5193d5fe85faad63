"""Markdown table of one `seqlens analyze` run's stage times (python3 bench/analyze_table.py AN_DIR EVAL_S [WALL_S]).

AN_DIR is analyze's output directory: its analyze.json lists each stage's seconds.  EVAL_S is the
wall time of one `seqlens eval` of the same model and data (one forward pass per example), timed
around it (analyze_scale.sh: the median of six, three before and three after), and WALL_S the wall time of the whole analyze
command (which also writes the report). Every time is also printed as a multiple of that eval
pass, the unit that holds up on a shared machine, and as a multiple of analyze's own eval stage (the
same forward pass over the same examples, timed inside the run): a host that changes phase between
the evals around the run and the run itself moves the first divisor but not the second.  Used by
bench/analyze_scale.sh.
"""
import json
import os
import sys


def main(argv):
    if len(argv) not in (3, 4):
        print("usage: python3 bench/analyze_table.py AN_DIR EVAL_S [WALL_S]", file=sys.stderr)
        return 2
    with open(os.path.join(argv[1], "analyze.json")) as f:
        run = json.load(f)
    eval_s = float(argv[2])
    wall_s = float(argv[3]) if len(argv) == 4 else None
    summary, config = run["data_summary"], run["config"]
    print(f"`seqlens analyze` of a {config['arch']} (d {config['d_model']}, {config['n_layers']} layers, "
          f"{run['parameters']:,} parameters) over {summary['examples_analysed']:,} examples of up to "
          f"{summary['padded_length']:,} tokens; options `{run['inputs']['options']}`; "
          f"one `seqlens eval` (the median of six, three before analyze and three after): {eval_s:.2f} s.")
    print()
    stages = {stage["name"]: stage for stage in run["stages"]}
    own = stages.get("eval", {})
    own_s = own.get("seconds") if own.get("status") == "done" else None

    def passes(seconds, unit):
        return f"{seconds / unit:.1f}" if unit else "—"

    print("| stage | seconds | eval passes | passes of analyze's eval stage |")
    print("|---|---|---|---|")
    total = 0.0
    for stage in run["stages"]:
        seconds = stage.get("seconds")
        if stage.get("status") != "done" or seconds is None:
            print(f"| {stage['name']} | {stage.get('status', '?')} | — | — |")
            continue
        total += seconds
        print(f"| {stage['name']} | {seconds:.2f} | {passes(seconds, eval_s)} | {passes(seconds, own_s)} |")
    print(f"| **all stages** | **{total:.2f}** | **{passes(total, eval_s)}** | **{passes(total, own_s)}** |")
    if wall_s is not None:
        print(f"| analyze command (wall, with the report) | {wall_s:.2f} | {passes(wall_s, eval_s)} "
              f"| {passes(wall_s, own_s)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
