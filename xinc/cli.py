"""The `xinc` command: what a user does by hand (synthetic data, parameter counts, tracing)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def cmd_synth(args: argparse.Namespace) -> None:
    from pathlib import Path

    from xinc.data.synth import generate

    out = Path(args.out)
    truth = Path(args.truth) if args.truth else out.with_name(out.name + ".truth.npz")
    generate(args.dataset, out, truth, seed=args.seed, scale=args.scale)
    print(f"wrote {out} (ground truth {truth})")


def cmd_params(args: argparse.Namespace) -> None:
    from xinc.config import load_config
    from xinc.models import build_model, count_params

    models = load_config(args.preset)["models"]
    counts = {arch: count_params(build_model(arch, models[arch])) for arch in sorted(models)}
    print(json.dumps(counts))


def cmd_trace(args: argparse.Namespace) -> None:
    from xinc.tasks import trace_checkpoint

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


def cmd_native(args: argparse.Namespace) -> None:
    from xinc.native import NativeBuildError, build, setting

    try:
        path = build()
    except NativeBuildError as err:
        raise ValueError(f"{err}\n(xinc runs without them, on its slower torch/numpy code)") \
            from err
    print(f"C kernels: {path} (XINC_NATIVE={setting()})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xinc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    synth = sub.add_parser("synth", help="generate a synthetic dataset in its official layout")
    synth.add_argument("dataset", choices=["cityscapes_vps", "vipseg"])
    synth.add_argument("out", help="output folder (replaced if it exists)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--scale", choices=["tiny", "small"], default="small")
    synth.add_argument("--truth", help="ground-truth npz (default: <out>.truth.npz)")
    synth.set_defaults(func=cmd_synth)

    params = sub.add_parser("params", help="parameter counts of the configured models (JSON)")
    params.add_argument("--preset", help="preset name in presets/ or a YAML file")
    params.set_defaults(func=cmd_params)

    trace = sub.add_parser("trace", help="contribution statistics of one checkpoint and frame")
    trace.add_argument("checkpoint")
    trace.add_argument("out", help="output folder for <layer>.npz statistics")
    trace.add_argument("--frame", type=int, default=0, help="frame index (NeRV only)")
    trace.add_argument("--layers", nargs="+", help="layers (default: all)")
    trace.add_argument("--mode", choices=["reference", "exact"], default="reference")
    trace.add_argument("--bias", choices=["split", "separate"], default="split")
    trace.add_argument("--neuron", choices=["kernel", "channel"], default="kernel")
    trace.set_defaults(func=cmd_trace)
    native = sub.add_parser("native", help="build the C kernels now (or find them built) and "
                            "say where they are; an error shows the compiler's message")
    native.set_defaults(func=cmd_native)
    bench = sub.add_parser("bench", help="benchmarks (ratios against a baseline in the same run)")
    bench_sub = bench.add_subparsers(dest="benchmark", required=True)
    train = bench_sub.add_parser(
        "train", help="training speed: our NeRV loop vs a textbook loop; FFNs batched vs one by one"
    )
    train.add_argument("--arch", choices=["nerv", "ffn"], required=True)
    train.add_argument("--frames", type=int, default=30, help="video length / number of FFNs")
    train.add_argument("--size", type=int, nargs=2, default=[128, 256], metavar=("H", "W"))
    train.add_argument("--epochs", type=int, default=2, help="NeRV epochs per timed run")
    train.add_argument("--steps", type=int, default=20, help="FFN steps per timed run")
    train.add_argument("--repeats", type=int, default=3)
    train.add_argument("--batch-models", type=int, nargs="+", default=[0],
                       help="FFN group sizes to time (0 = automatic)")
    train.add_argument("--device", default="auto")
    train.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--json", help="also write the result as JSON here")
    train.set_defaults(func=cmd_bench_train)
    canvas = bench_sub.add_parser(
        "canvas", help="one frame's maps and statistics vs the authors' straightforward algorithm"
    )
    canvas.add_argument("--preset", default="paper")
    canvas.add_argument("--cases", nargs="+",
                        help="subset of: naive dense reuse alloc exact stats job")
    canvas.add_argument("--naive-layers", nargs="+",
                        help="NeRV layers of the naive baseline (default: all; b1 needs 8-12 GiB)")
    canvas.add_argument("--repeats", type=int, default=1)
    canvas.add_argument("--device", default="cpu",
                        help="cpu (default), cuda or auto: where every case runs (float32, "
                             "TF32 off)")
    canvas.add_argument("--json", help="also write the result as JSON here")
    canvas.set_defaults(func=cmd_bench_canvas)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"xinc: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
