"""Zoo recipes: every shared model of the book as a frozen config (DESIGN.md §5).

A recipe names its data, architecture, objective, optimiser and steps. The presets live in the visible
dict `RECIPES[name][profile]`; `quick` weights are trained on the CPU by `make zoo` and shipped in the
package, `full` ones are trained on a GPU at run time. Sizes are chosen in calibration.md's light:
minutes of CPU training give crude models, tens of minutes give models whose features are worth probing.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, replace

from .models import ClassifierConfig, DiTConfig, EncoderConfig, MLPConfig, NoisyClassifierConfig, UNetConfig, UViTConfig

FORMAT = 1  # bump when the meaning of a recipe field changes


@dataclass(frozen=True)
class Recipe:
    name: str
    model: object                 # a model config: UNetConfig, ClassifierConfig, MLPConfig
    task: str                     # a key of training.TASKS
    data: str                     # 'fashion_mnist', 'toy_scenes' or 'toy2d/<name>'
    steps: int
    batch_size: int
    lr: float
    warmup: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float | None = 0.999
    schedule: str = "linear"      # noise schedule (denoising tasks)
    T: int = 1000
    prediction: str = "eps"       # what the network predicts: eps, x0 or v
    p_uncond: float = 0.1         # label dropout for classifier-free guidance
    seed: int = 0


def recipe_hash(recipe: Recipe) -> str:
    """sha256 of the recipe's content (model config type included): changes whenever the recipe does."""
    payload = {"format": FORMAT, "model_type": type(recipe.model).__name__, **dataclasses.asdict(recipe)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


_UNET = Recipe(name="unet_fmnist", model=UNetConfig(channels=(32, 48, 48), num_classes=10), task="denoise",
               data="fashion_mnist", steps=4000, batch_size=64, lr=1e-3, warmup=200)
_CLASSIFIER = Recipe(name="classifier_fmnist", model=ClassifierConfig(), task="classify", data="fashion_mnist",
                     steps=1200, batch_size=128, lr=1e-3, warmup=50, ema_decay=None, weight_decay=1e-4)
_NOISY = Recipe(name="noisy_classifier_fmnist", model=NoisyClassifierConfig(), task="classify_noisy",
                data="fashion_mnist", steps=2000, batch_size=128, lr=1e-3, warmup=50, p_uncond=0.0)
# Chapter 2 trains the three backbones at the U-Net's budget (same steps, batch, optimiser, schedule);
# the token models are sized so that their CPU step time is below the U-Net's (make bench).
_DIT = replace(_UNET, name="dit_fmnist", model=DiTConfig(dim=96, depth=6, heads=4, patch=4))
_UVIT = replace(_UNET, name="uvit_fmnist", model=UViTConfig(dim=64, depth=7, heads=4, patch=4))
_FULL_BUDGET = dict(steps=6000, batch_size=256, lr=5e-4, warmup=500)   # the full U-Net's
ABLATION_STEPS = {"dit_fmnist": {"quick": 400, "full": 1500}, "uvit_fmnist": {"quick": 800, "full": 1500}}
# ch. 4's dense tasks: an unconditional U-Net on 32x32 RGB toy scenes (segmentation and correspondence labels are
# never seen in training); 2,000 steps are the ~13 minutes that `make zoo` grants it on the CPU.
_SCENES = Recipe(name="unet_toyscenes", model=UNetConfig(in_channels=3, channels=(32, 48, 48), num_classes=None),
                 task="denoise", data="toy_scenes", steps=2000, batch_size=64, lr=1e-3, warmup=200, p_uncond=0.0)
# chs. 9 and 12: the self-supervised encoder (SimCLR, no labels), standing in for DINOv2; 2 x 128 views per step
_SIMCLR = Recipe(name="simclr_fmnist", model=EncoderConfig(), task="contrastive", data="fashion_mnist", steps=2000,
                 batch_size=128, lr=2e-3, warmup=100, weight_decay=1e-4, ema_decay=None, p_uncond=0.0)
_TOY = Recipe(name="toy_mlp_eps", model=MLPConfig(), task="denoise", data="toy2d/8gaussians", steps=3000,
              batch_size=512, lr=2e-3, warmup=100, p_uncond=0.0)

RECIPES = {
    # the base model of the book: class-conditional U-Net with label dropout (also serves unconditionally)
    "unet_fmnist": {
        "quick": _UNET,
        "full": replace(_UNET, model=UNetConfig(channels=(64, 96, 96), emb_dim=256), steps=6000,
                        batch_size=256, lr=5e-4, warmup=500),
    },
    # the evaluation classifier: its 128-d features define FID-FM, its predictions sample accuracy
    "classifier_fmnist": {"quick": _CLASSIFIER, "full": replace(_CLASSIFIER, steps=4000, batch_size=256)},
    # the noise-aware classifier p(y | x_t, t) of classifier guidance (ch. 3)
    "noisy_classifier_fmnist": {"quick": _NOISY, "full": replace(_NOISY, steps=6000, batch_size=256)},
    # the backbones of ch. 2 at the U-Net's budget; the DiT is also the baseline of representation alignment
    "dit_fmnist": {"quick": _DIT, "full": replace(_DIT, model=DiTConfig(dim=192, depth=8, heads=6, patch=2),
                                                  **_FULL_BUDGET)},
    "uvit_fmnist": {"quick": _UVIT, "full": replace(_UVIT, model=UViTConfig(dim=192, depth=9, heads=6, patch=2),
                                                    **_FULL_BUDGET)},
    "unet_toyscenes": {"quick": _SCENES,
                       "full": replace(_SCENES, model=UNetConfig(in_channels=3, channels=(64, 96, 96), emb_dim=256,
                                                                 num_classes=None), **_FULL_BUDGET)},
    "simclr_fmnist": {"quick": _SIMCLR, "full": replace(_SIMCLR, steps=6000, batch_size=512)},
    # three tiny 2-D denoisers that differ only in what they predict (ch. 1, eps vs x0 vs v)
    **{f"toy_mlp_{kind}": {"quick": replace(_TOY, name=f"toy_mlp_{kind}", prediction=kind),
                           "full": replace(_TOY, name=f"toy_mlp_{kind}", prediction=kind, steps=5000)}
       for kind in ("eps", "x0", "v")},
}

# ch. 2's ablations: short runs of each token backbone with and without its design choice; only their loss
# curves and metrics are kept (RECORD_ONLY). The first arm of each pair is the main recipe cut short, so
# with the same seed it repeats the main run's first steps exactly.
ABLATIONS = {"dit_ablation_adaln_zero": ("dit_fmnist", {}),
             "dit_ablation_plain_init": ("dit_fmnist", {"zero_init": False}),
             "uvit_ablation_long_skips": ("uvit_fmnist", {}),
             "uvit_ablation_no_skips": ("uvit_fmnist", {"long_skips": False})}
for _name, (_base, _change) in ABLATIONS.items():
    RECIPES[_name] = {p: replace(r, name=_name, model=replace(r.model, **_change), steps=ABLATION_STEPS[_base][p])
                      for p, r in RECIPES[_base].items()}
RECORD_ONLY = frozenset(ABLATIONS)    # `make zoo` ships their training record, not their weights


def get(name: str, profile: str = "quick", seed: int = 0) -> Recipe:
    """The recipe `name` at a profile, for a training seed."""
    if name not in RECIPES:
        raise KeyError(f"unknown zoo model {name!r}; the zoo has {sorted(RECIPES)}")
    if profile not in RECIPES[name]:
        raise KeyError(f"zoo model {name!r} has no {profile!r} recipe; it has {sorted(RECIPES[name])}")
    return replace(RECIPES[name][profile], seed=seed)
