"""The `xinc` command: what a user does by hand (synthetic data, parameter counts, tracing)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from xinc.bench import CASES as BENCH_CASES
from xinc.bench import CLUSTER_LAYERS, NERV_LAYERS


def cmd_synth(args: argparse.Namespace) -> None:
    import shutil
    import tempfile
    from pathlib import Path

    from xinc.data.official_archives import write_official_archives
    from xinc.data.synth import generate, is_truth_file

    out = Path(args.out).resolve()
    if args.emit == "layout":
        truth = Path(args.truth) if args.truth else out.with_name(out.name + ".truth.npz")
        generate(args.dataset, out, truth, seed=args.seed, scale=args.scale)
        print(f"wrote {out} (ground truth {truth})")
        return
    truth = Path(args.truth) if args.truth else out / f"{args.dataset}.truth.npz"
    if truth.exists() and not is_truth_file(truth):
        raise ValueError(f"{truth}: exists and is not a ground-truth file of xinc synth; "
                         "choose a new truth path")
    with tempfile.TemporaryDirectory(prefix="xinc-synth-") as tmp:
        generate(args.dataset, Path(tmp) / args.dataset, Path(tmp) / "truth.npz",
                 seed=args.seed, scale=args.scale)
        written = write_official_archives(args.dataset, Path(tmp) / args.dataset, out)
        truth.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / "truth.npz", truth)
    print(f"wrote {', '.join(sorted(written))} in {out} (ground truth {truth})")


def cmd_params(args: argparse.Namespace) -> None:
    import yaml

    from xinc.config import load_config
    from xinc.models import build_model, count_params

    try:
        models = load_config(args.preset)["models"]
    except yaml.YAMLError as err:
        raise ValueError(f"preset {args.preset!r}: not valid YAML ({' '.join(str(err).split())})"
                         ) from err
    counts = {arch: count_params(build_model(arch, models[arch])) for arch in sorted(models)}
    print(json.dumps(counts))


def cmd_trace(args: argparse.Namespace) -> None:
    from xinc.workflow_steps import trace_checkpoint

    trace_checkpoint(args.checkpoint, args.out, frame=args.frame, layers=args.layers,
                     mode=args.mode, bias=args.bias, neuron=args.neuron)
    print(f"wrote {args.out}")


def cmd_bench_train(args: argparse.Namespace) -> None:
    from xinc.bench.train import format_report, run

    result = run(args.arch, frames=args.frames, size=args.size, epochs=args.epochs,
                 steps=args.steps, repeats=args.repeats, batch_models=args.batch_models,
                 device=args.device, threads=args.threads, seed=args.seed)
    print(format_report(result))
    if args.json:
        from xinc.io import write_json

        write_json(args.json, result)


def cmd_bench_canvas(args: argparse.Namespace) -> None:
    from xinc.bench.canvas import format_report, run

    kwargs = {"cases": args.cases} if args.cases else {}
    if args.naive_layers:
        kwargs["naive_layers"] = args.naive_layers
    result = run(args.preset, repeats=args.repeats, device=args.device, **kwargs)
    print(format_report(result))
    if args.json:
        from xinc.io import write_json

        write_json(args.json, result)


def cmd_bench_canvas_jobs(args: argparse.Namespace) -> None:
    from xinc.bench.canvas_jobs import format_report, run

    for arch in args.archs:
        result = run(arch, preset=args.preset, n_frames=args.frames, device=args.device)
        print(format_report(result))
        if args.json:
            from xinc.io import write_json

            write_json(Path(args.json).with_suffix(f".{arch}.json"), result)


def cmd_bench_clusters(args: argparse.Namespace) -> None:
    from xinc.bench.clusters import format_report, run

    result = run(args.layers, seeds=args.seeds, scale=args.scale, baseline=not args.no_baseline)
    print(format_report(result))
    if args.json:
        from xinc.io import write_json

        write_json(args.json, result)


def cmd_native(args: argparse.Namespace) -> None:
    from xinc.native import NativeBuildError, build, setting

    try:
        path = build()
    except NativeBuildError as err:
        raise ValueError(f"{err}\n(xinc runs without them, on its slower torch/numpy code)") \
            from err
    print(f"C kernels: {path} (XINC_NATIVE={setting()})")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default after its help, unless the help states it already."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not ≥ 1")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer ≥ 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is not ≥ 0")
    return value


def add_synth(sub: argparse._SubParsersAction) -> None:
    synth = sub.add_parser("synth", help="generate a synthetic dataset in its official layout",
                           formatter_class=HelpFormatter)
    synth.add_argument("dataset", choices=["cityscapes_vps", "vipseg"],
                       help="which dataset's layout to write")
    synth.add_argument("out", help="output folder: new, empty, or an earlier output of xinc "
                       "synth (replaced); any other folder is refused")
    synth.add_argument("--seed", type=int, default=0, help="random seed of the scenes")
    synth.add_argument("--scale", choices=["tiny", "small"], default="small",
                       help="frame sizes (docs/formats.md §1)")
    synth.add_argument("--truth", help="ground-truth npz, new or written by xinc synth "
                       "(default: <out>.truth.npz beside the folder; with --emit archives "
                       "<out>/<dataset>.truth.npz)")
    synth.add_argument("--emit", choices=["layout", "archives"], default="layout",
                       help="the prepared layout, or the official raw archives under their "
                       "real names (written into OUT beside other files)")
    synth.set_defaults(func=cmd_synth)


def add_params(sub: argparse._SubParsersAction) -> None:
    params = sub.add_parser("params", help="parameter counts of the configured models (JSON)",
                            formatter_class=HelpFormatter)
    params.add_argument("--preset", help="preset name in presets/ or a YAML file (default: "
                        "config.yaml alone)")
    params.set_defaults(func=cmd_params)


def add_trace(sub: argparse._SubParsersAction) -> None:
    trace = sub.add_parser("trace", help="contribution statistics of one checkpoint and frame",
                           formatter_class=HelpFormatter)
    trace.add_argument("checkpoint", help="model checkpoint (xinc ckpt.pt or the authors')")
    trace.add_argument("out", help="output folder for <layer>.npz statistics")
    trace.add_argument("--frame", type=int, help="raw frame (0-based). NeRV: one of 0 … "
                       "frames−1 of the checkpoint (default: 0). FFN: the frame it was "
                       "trained on (default: the one its checkpoint records; another is an "
                       "error; where none is recorded, the frame only labels the statistics)")
    trace.add_argument("--layers", nargs="+", help="layers: NeRV head b3 b2 b1, FFN l1 l2 l3 "
                       "(default: all)")
    trace.add_argument("--mode", choices=["reference", "exact"], default="reference",
                       help="the authors' maps or the additive exact ones (README)")
    trace.add_argument("--bias", choices=["split", "separate"], default="split",
                       help="bias as equal shares per neuron, or as extra pseudo-neurons")
    trace.add_argument("--neuron", choices=["kernel", "channel"], default="kernel",
                       help="NeRV neurons: kernel slices or input channels")
    trace.set_defaults(func=cmd_trace)


def add_native(sub: argparse._SubParsersAction) -> None:
    native = sub.add_parser("native", help="build the C kernels now (or find them built) and "
                            "say where they are; an error shows the compiler's message",
                            formatter_class=HelpFormatter)
    native.set_defaults(func=cmd_native)


def add_bench_train(bench_sub: argparse._SubParsersAction) -> None:
    train = bench_sub.add_parser(
        "train", formatter_class=HelpFormatter,
        help="training speed: our NeRV loop vs a textbook loop; FFNs batched vs one by one")
    train.add_argument("--arch", choices=["nerv", "ffn"], required=True,
                       help="which training to time")
    train.add_argument("--frames", type=positive_int, default=30,
                       help="video length / number of FFNs")
    train.add_argument("--size", type=positive_int, nargs=2, default=[128, 256],
                       metavar=("H", "W"), help="frame size (NeRV: multiples of 16)")
    train.add_argument("--epochs", type=positive_int, default=2, help="NeRV epochs per timed run")
    train.add_argument("--steps", type=positive_int, default=20, help="FFN steps per timed run")
    train.add_argument("--repeats", type=positive_int, default=3, help="timed runs per variant")
    train.add_argument("--batch-models", type=non_negative_int, nargs="+", default=[0],
                       help="FFN group sizes to time (0 = automatic)")
    train.add_argument("--device", default="auto", help="cpu, cuda or auto")
    train.add_argument("--threads", type=positive_int, help="torch threads (default: torch's)")
    train.add_argument("--seed", type=int, default=0, help="seed of the random video and models")
    train.add_argument("--json", help="also write the result as JSON here (default: not written)")
    train.set_defaults(func=cmd_bench_train)


def add_bench_canvas(bench_sub: argparse._SubParsersAction) -> None:
    canvas = bench_sub.add_parser(
        "canvas", formatter_class=HelpFormatter,
        help="one frame's maps and statistics vs the authors' straightforward algorithm")
    canvas.add_argument("--preset", choices=["paper"], default="paper", help="model sizes")
    canvas.add_argument("--cases", nargs="+", choices=BENCH_CASES, metavar="CASE",
                        help=f"subset of: {' '.join(BENCH_CASES)} (default: all)")
    canvas.add_argument("--naive-layers", nargs="+", choices=NERV_LAYERS, metavar="LAYER",
                        help="NeRV layers of the naive baseline, of: head b3 b2 b1 (default: "
                             "all; b1 needs 8-12 GiB)")
    canvas.add_argument("--repeats", type=positive_int, default=1, help="timed runs per case")
    canvas.add_argument("--device", default="cpu",
                        help="cpu, cuda or auto: where every case runs (float32, TF32 off)")
    canvas.add_argument("--json", help="also write the result as JSON here (default: not "
                        "written)")
    canvas.set_defaults(func=cmd_bench_canvas)


def add_bench_canvas_jobs(bench_sub: argparse._SubParsersAction) -> None:
    jobs = bench_sub.add_parser(
        "canvas-jobs", formatter_class=HelpFormatter,
        help="canvas of several frames: one process per frame vs one per model (start-up cost)")
    jobs.add_argument("--archs", nargs="+", choices=["nerv", "ffn"], default=["nerv", "ffn"],
                      metavar="ARCH", help="of: nerv ffn (default: both)")
    jobs.add_argument("--preset", default="smoke",
                      help="preset (name or YAML path) whose models, layers and size are used")
    jobs.add_argument("--frames", type=positive_int, default=6, help="frames of the model")
    jobs.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    jobs.add_argument("--json", help="also write each result as JSON, to <path>.<arch>.json "
                      "(default: not written)")
    jobs.set_defaults(func=cmd_bench_canvas_jobs)


def add_bench_clusters(bench_sub: argparse._SubParsersAction) -> None:
    clusters = bench_sub.add_parser(
        "clusters", formatter_class=HelpFormatter,
        help="one layer's UMAP + k-means at paper size vs umap-learn's defaults")
    clusters.add_argument("--layers", nargs="+", choices=CLUSTER_LAYERS, metavar="LAYER",
                          default=list(CLUSTER_LAYERS),
                          help=f"of: {' '.join(CLUSTER_LAYERS)} (default: all)")
    clusters.add_argument("--seeds", type=positive_int, default=5,
                          help="seeds pooled per layer (paper 5)")
    clusters.add_argument("--scale", type=float, default=1.0,
                          help="fraction of the paper's neurons per seed")
    clusters.add_argument("--no-baseline", action="store_true",
                          help="time only ours (umap-learn's defaults take minutes on B1)")
    clusters.add_argument("--json", help="also write the result as JSON here (default: not "
                          "written)")
    clusters.set_defaults(func=cmd_bench_clusters)


def build_parser() -> argparse.ArgumentParser:
    from xinc import __version__

    parser = argparse.ArgumentParser(prog="xinc", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="what to do (xinc COMMAND --help)")
    add_synth(sub)
    add_params(sub)
    add_trace(sub)
    add_native(sub)
    bench = sub.add_parser("bench", formatter_class=HelpFormatter,
                           help="benchmarks (ratios against a baseline in the same run)")
    bench_sub = bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK",
                                     help="train, canvas, canvas-jobs or clusters")
    add_bench_train(bench_sub)
    add_bench_canvas(bench_sub)
    add_bench_canvas_jobs(bench_sub)
    add_bench_clusters(bench_sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (OSError, ValueError) as err:
        print(f"xinc: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
