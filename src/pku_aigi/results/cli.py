"""``pku-aigi results publish|compare``: benchmark runs as Hub datasets, and across runs."""

from __future__ import annotations

import time

from ..errors import PkuAigiError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "results",
        help="publish a bench run as a Hub dataset; compare published runs",
        description="Benchmark results as Hub datasets: `publish` makes one from a finished "
        "`pku-aigi bench` folder, `compare` makes BD tables across runs.",
    )
    commands = parser.add_subparsers(dest="results_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda args: _help(parser))

    publish = commands.add_parser(
        "publish",
        help="a finished bench output folder as a Hub dataset folder",
        description="Write the measurements of a finished `pku-aigi bench` run as a Hub "
        "dataset folder: data/measurements.parquet (one row per measurement), "
        "data/bd.parquet, the run's plots and a card that `datasets.load_dataset(FOLDER)` "
        "reads. Refuses an incomplete run or one of another pku-aigi version.",
    )
    publish.add_argument("bench_out", metavar="BENCH_OUT", help="the --out folder of the run")
    publish.add_argument("--out", required=True, metavar="FOLDER", help="dataset folder to write")
    publish.add_argument("--name", help="the run's name in the rows (default: BENCH_OUT's name)")
    publish.add_argument(
        "--push-to-hub", metavar="ORG/NAME", help="also upload it as this dataset repo"
    )
    publish.add_argument(
        "--force", action="store_true", help="replace the dataset files in a non-empty --out"
    )
    publish.set_defaults(func=run_publish)

    compare = commands.add_parser(
        "compare",
        help="BD tables across published runs, on the images they share",
        description="Compare results datasets (folders or Hub dataset ids) on the images "
        "they all measured: BD-rate on PSNR and MS-SSIM dB of every codec against the "
        "anchor, per subset and over all images, as Markdown.",
    )
    compare.add_argument(
        "sources", nargs="+", metavar="DATASET", help="folder or Hub id (org/name)"
    )
    compare.add_argument("--anchor", default="vvc", help="codec the BD values are relative to "
                         "(a name, taken from the first run that has it, or 'codec (run)')")  # fmt: skip
    compare.add_argument("--bd-range", default="learned", metavar="learned|full|LOW,HIGH",
                         help="bpp interval of the BD values, as in bench")  # fmt: skip
    compare.add_argument("--out", metavar="FILE.md", help="write the report here, not to stdout")
    compare.add_argument("--force", action="store_true", help="overwrite --out")
    compare.set_defaults(func=run_compare)


def _help(parser) -> int:
    parser.print_help()
    return 2


def run_publish(args) -> int:
    from .publish import publish, push

    start = time.perf_counter()
    published = publish(
        args.bench_out, args.out, name=args.name, force=args.force, repo_id=args.push_to_hub
    )
    print(
        f"results: {published.rows} rows, {published.bytes / 1024:.0f} KiB in {published.folder} "
        f"({time.perf_counter() - start:.1f} s); load it with "
        f"datasets.load_dataset({str(published.folder)!r})"
    )
    if args.push_to_hub:
        print(f"pushed: {push(published.folder, args.push_to_hub)}")
    return 0


def run_compare(args) -> int:
    from ..bench.cli import parse_bd_range
    from ..outputs import check_output_file, write_file_atomically
    from .compare import compare
    from .dataset import open_results

    parse_bd_range(args.bd_range)
    if len(args.sources) < 2:
        raise PkuAigiError("give at least two results datasets (folders or Hub ids) to compare")
    if args.out:
        check_output_file(args.out, force=args.force, option="--out")
    runs = [open_results(source) for source in args.sources]
    comparison = compare(runs, anchor=args.anchor, bd_range=args.bd_range)
    if args.out:
        write_file_atomically(args.out, comparison.text.encode("utf-8"))
        print(f"compare: {comparison.shared} shared images; report: {args.out}")
    else:
        print(comparison.text)
    return 0
