"""``deeplsm benchmark``: scenario × N × lesion source × seed, every method on the same subjects."""

from __future__ import annotations

import argparse
import sys

from deeplsm.cli._common import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark", help="where does each method win? a grid of studies (scenario x N x source x seed)",
        description="Runs one study per cell of the grid (cached and resumable per cell) and writes "
        "DIR/results.csv (tidy: one row per cell x method x score x metric), DIR/cells.csv (time and "
        "peak memory per cell) and DIR/benchmark.html. Without --config: the default grid (measured "
        "at 1-1.5 hours on 2 CPU cores; see the README's measured performance).")
    grid = p.add_mutually_exclusive_group()
    grid.add_argument("--config", help="benchmark TOML file (see examples/bench.toml)")
    grid.add_argument("--quick", action="store_true",
                      help="tiny grid (4 scenarios, N = 100, synthetic lesions, 1 epoch): minutes on a CPU")
    p.add_argument("--out", required=True, help="output folder (rerun to skip the finished cells)")
    run = p.add_mutually_exclusive_group()
    run.add_argument("--jobs", type=positive_int, default=1,
                     help="cells run side by side on this machine (joblib; default 1)")
    run.add_argument("--dask-scheduler", metavar="ADDRESS",
                     help="send the cells to a Dask cluster (tcp://host:8786); its workers must see "
                     "--out at the same path. Needs: pip install 'deeplsm[benchmark]'")
    p.add_argument("--threads", type=positive_int,
                   help="torch CPU threads per cell (default: [cells] threads, else cores / --jobs); "
                   "1 is faster when other jobs share the cores")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from deeplsm.benchmark import load_bench_config, make_bench_config, quick_config, run_benchmark

    if args.quick:
        cfg = quick_config()
    elif args.config:
        cfg = load_bench_config(args.config)
    else:
        cfg = make_bench_config()
    if args.threads is not None:
        cfg["cells"]["threads"] = args.threads
    res = run_benchmark(cfg, args.out, jobs=args.jobs, dask_scheduler=args.dask_scheduler,
                        verbose=not args.quiet)
    print_summary(res, args.out)
    return 0


def print_summary(res: dict, out) -> None:
    """Headline means at the largest N of each scenario, then where the outputs are."""
    from deeplsm.benchmark import headline_means

    w = sys.stdout.write
    means = headline_means(res["results"])
    w(f"\ndeeplsm benchmark: {len(res['ran'])} cells run, {len(res['skipped'])} cached "
      f"({res['seconds']:.0f} s)\n")
    if not means.empty:
        w(f"\n  {'source':<12}{'scenario':<11}{'N':>5}  {'method':<8}{'r²':>7}{'PR-AUC':>8}\n")
        for (src, sc), d in means.groupby(["source", "scenario"], sort=False):
            d = d[d["n"] == d["n"].max()]
            for method, m in d.groupby("method", sort=False):
                vals = dict(zip(m["metric"], m["mean"]))
                r2, pr = vals.get("r2"), vals.get("pr_auc")
                w(f"  {src:<12}{sc:<11}{int(m['n'].iloc[0]):>5}  {method:<8}"
                  f"{'–' if r2 is None else f'{r2:.3f}':>7}{'–' if pr is None else f'{pr:.3f}':>8}\n")
    w(f"\nresults: {out}/results.csv\npage: {out}/benchmark.html\n")
