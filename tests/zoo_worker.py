"""A separate process for the zoo's fault tests (tests/test_zoo_faults.py): registers a toy recipe, then trains it
into DIFFREP_CACHE (`get`) or ships it into the folder WEIGHTS (`ship`). Not a test module."""
import sys
from pathlib import Path

from diffrep_lib import recipes, zoo
from diffrep_lib.models import MLPConfig


def toy(steps: int) -> recipes.Recipe:
    return recipes.Recipe(name="fault_toy", model=MLPConfig(hidden=16, depth=2), task="denoise",
                          data="toy2d/8gaussians", steps=steps, batch_size=64, lr=1e-2, warmup=0, p_uncond=0.0)


if __name__ == "__main__":
    action, steps = sys.argv[1], int(sys.argv[2])
    recipes.RECIPES["fault_toy"] = {"quick": toy(steps), "full": toy(steps)}
    if action == "get":
        model = zoo.get("fault_toy", "full")
        print("weight-sum", float(sum(p.double().sum() for p in model.parameters())))
    elif action == "ship":
        weights = Path(sys.argv[3])
        zoo.store.WEIGHTS_DIR, zoo.store.MANIFEST = weights, weights / "manifest.json"
        print("shipped", zoo.ship("fault_toy")["sha256"])
