"""`cgn interpolate`: an ImageNet CGN interpolation sheet (cgn/imagenet/interpolate.py) as a PNG.

cgn interpolate --model imagenet-cgn --mechanism texture --classes cow,elephant,valley --to zebra --out sheet.png
"""

import argparse
from pathlib import Path

MODES = ("shape", "texture", "background", "all")  # cgn.imagenet.interpolate.MODES, without importing torch here


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "interpolate",
        help="ImageNet CGN: a PNG sheet of one mechanism (or all) moving from one class to another",
        description="Interpolation sheets: one mechanism's class (or all three) moves from one class to another, "
        "noise fixed.",
    )
    p.add_argument("--model", default="imagenet-cgn")
    p.add_argument("--store", type=Path, help="model-store root (default: $CGN_MODEL_STORE)")
    p.add_argument("--mechanism", choices=MODES, required=True)
    p.add_argument("--classes", required=True, help="shape,texture,background: names or ids")
    p.add_argument("--to", required=True, help="the class to interpolate towards")
    p.add_argument("--seeds", default="0,0,0", help="noise seeds of shape,texture,background")
    p.add_argument("--steps", type=int, default=6, help="midpoints between the two classes")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cgn.imagenet.interpolate import interpolate, sheet
    from cgn.imagenet.model import ImagenetCGN
    from cgn.imagenet.sheets import save_png
    from cgn.mechanisms import MECHANISMS
    from model_store import ModelStore

    store = args.store
    if store is None:
        from service.settings import Settings

        store = Settings().model_store
    loaded = ModelStore(store).load(args.model)
    if not isinstance(loaded.model, ImagenetCGN):
        raise ValueError(f"--model {args.model}: interpolation sheets are for ImageNet CGN models")
    words = args.classes.split(",")
    if len(words) != 3:
        raise SystemExit("--classes: give three, for shape,texture,background")
    labels = []
    for mech, word in zip(MECHANISMS, words, strict=True):
        r = loaded.manifest.vocab(mech).resolve(mech, int(word) if word.strip().isdigit() else word)
        print(f"{mech}: {word!r} -> {r.id} {r.name} ({r.via})")
        labels.append(r.id)
    voc = loaded.manifest.vocab(args.mechanism if args.mechanism != "all" else "shape")
    target = voc.resolve("to", int(args.to) if args.to.isdigit() else args.to)
    print(f"to: {args.to!r} -> {target.id} {target.name} ({target.via})")
    seeds = [int(s) for s in args.seeds.split(",")]
    images = interpolate(loaded.model, args.mechanism, labels, target.id, seeds, args.steps)
    print(f"wrote {save_png(sheet(images, args.mechanism), args.out)}")
    return 0
