"""``python -m octo.gpu {plan,next,land}``: the GPU queue (see octo/gpu/queue.py, runner.py, land.py).

    plan  [--jobs] [--write]                            ordered pieces, estimates, done/pending from runs.csv
    next  --out DIR [--budget-s 540] [--dry] [-k K] [--only P0 P1.1]   run the next pending pieces
    land  [ARCHIVE ...]                                 merge archives (default: ../shared/gpu-results/*.tgz)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m octo.gpu", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("plan", help="the ordered pieces with estimates and done/pending status")
    q.add_argument("--jobs", action="store_true", help="also list every job's command")
    q.add_argument("--results", type=Path, default=None, help="results folder (default results/)")
    q.add_argument("--write", action="store_true", help="also rewrite results/gpu/queue.md")
    q = sub.add_parser("next", help="run the next pending pieces that fit the budget")
    q.add_argument("--out", type=Path, required=True, help="where the archive goes (the GPU call's $OUT)")
    q.add_argument("--budget-s", type=float, default=540.0, help="seconds this call may use (default 540)")
    q.add_argument("--dry", action="store_true", help="CPU rehearsal: the same commands with tiny overrides")
    q.add_argument("-k", type=int, default=None, help="concurrent jobs (default 4 on a GPU, 1 dry)")
    q.add_argument("--only", nargs="+", default=[], metavar="PIECE", help="piece ids or prefixes (P0, P2.a1)")
    q.add_argument("--runs", type=Path, default=None, help="run folders (default results/runs/_gpu[_dry])")
    q = sub.add_parser("land", help="merge GPU archives into results/ (refuses dry ones)")
    q.add_argument("archives", nargs="*", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "plan":
        from octo.gpu.queue import build_queue, status_markdown

        pieces = build_queue(args.results)
        print(status_markdown(pieces))
        if args.write:
            from octo.gpu.land import write_status
            from octo.gpu.queue import REPO

            print(f"wrote {write_status(args.results or REPO / 'results')}")
        if args.jobs:
            for piece in pieces:
                for job, done in zip(piece.jobs, piece.done):
                    print(f"{piece.id}\t{'done' if done else 'pending'}\t~{job.est_s / 60:.1f} min\t{job.command()}")
        return 0
    if args.cmd == "next":
        from octo.gpu.runner import next_call

        return next_call(args.out, args.budget_s, args.dry, args.k, args.only, args.runs)
    from octo.gpu.land import land_all

    return land_all(args.archives)


if __name__ == "__main__":
    sys.exit(main())
