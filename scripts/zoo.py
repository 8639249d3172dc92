"""`make zoo`: train every missing or stale `quick` recipe on the CPU and ship its weights.

    python scripts/zoo.py            # only what is missing or whose recipe changed
    python scripts/zoo.py --force unet_fmnist
    python scripts/zoo.py --verify   # check the manifest (recipe hashes, sha256, golden outputs)
"""
import argparse
import sys

from diffrep_lib import zoo


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="recipes to train (default: all stale ones)")
    ap.add_argument("--force", action="store_true", help="retrain even if up to date")
    ap.add_argument("--verify", action="store_true", help="only verify the shipped weights")
    args = ap.parse_args()
    if args.verify:
        problems = zoo.verify(args.names or None)
        print("\n".join(problems) or "zoo: every shipped entry verified")
        return 1 if problems else 0
    todo = (args.names or zoo.SHIPPED) if args.force else zoo.stale(args.names or None)
    if not todo:
        print("zoo: every shipped recipe is up to date")
    for name in todo:
        rec = zoo.ship(name)
        print(f"zoo: {name}: {rec['steps']} steps in {rec['wall_s']:.0f} s on {rec['device']}; {rec['metrics']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
