"""`arena-seg evaluate`: Dice per organ of a model on labelled volumes (the protocol's metric)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="Dice per organ on labelled volumes", description=__doc__)
    p.add_argument("--model", default="default", help="foundation name or model folder (default: default)")
    p.add_argument("--checkpoint", default=None, help="weights for fseft-swinunetr / monai-wholebody")
    p.add_argument("--images", nargs="+", required=True, help="CT volumes, or a folder of them")
    p.add_argument("--labels", nargs="+", required=True, help="label maps (same names as the images), or a folder")
    p.add_argument("--label", action="append", default=None, metavar="NAME[=ID]",
                   help="organ to score and its id in the label files (default: every organ the model knows, ids "
                        "from labels.json)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", default=None, help="also write the scores to this JSON file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from arena_seg.data.pairing import pair_volumes, parse_organs
    from arena_seg.devices import resolve_device
    from arena_seg.errors import InputError
    from arena_seg.files import write_json
    from arena_seg.inference.loading import load_model
    from arena_seg.training.evaluate import evaluate

    model, spec = load_model(args.model, args.checkpoint)
    organs = parse_organs(args.label or list(spec.labels), args.labels)
    unknown = [name for name in organs if name not in spec.labels]
    if unknown:
        raise InputError(f"the model does not segment {', '.join(unknown)}; it knows {', '.join(spec.labels)}")
    if spec.background_channel != 0:
        raise InputError(f"evaluate needs a softmax head with a background channel; {spec.name} has none")
    pairs = pair_volumes(args.images, args.labels)
    names = sorted(spec.labels, key=spec.labels.get)
    # every channel of the network stays in play; only the requested organs' file ids are scored
    label_map = {organs[n]: spec.labels[n] for n in organs}
    device = resolve_device(args.device)
    scores = evaluate(model.to(device), spec.preprocessing, pairs, label_map, names, device)
    scores = {n: scores[n] for n in organs}
    for name, dice in scores.items():
        print(f"{name}\t{dice:.4f}")
    if args.json:
        write_json(args.json, {"model": args.model, "volumes": [p["id"] for p in pairs], "dice": scores})
    return 0
