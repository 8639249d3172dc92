"""Zoo recipes: every shared model of the book as a frozen config (docs/ARCHITECTURE.md, "The zoo").

A recipe names its data, architecture, task (a method of `zoo.registry`), condition source, optimiser and steps.
The presets live in the visible dict `RECIPES[name][profile]`; `quick` weights are trained on the CPU by
`make zoo` and shipped in the package, `full` ones are trained on a GPU at run time. Sizes follow what CPU
training buys here (docs/ARCHITECTURE.md, "What minutes of CPU training buy"): minutes give crude models, tens
of minutes give models whose features are worth probing.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, replace

import torch

from ..errors import ZooError, bad, check_int
from ..core import schedules
from ..models import (ClassifierConfig, DiffAEConfig, DiTConfig, EncoderConfig, JointUNetConfig, LatentDAEConfig, MLPConfig,
                      NoisyClassifierConfig, RepUNetConfig, ResMLPConfig, TokenUNetConfig, UNetConfig,
                      UViTConfig)

FORMAT = 1  # bump when the meaning of a recipe field changes
LDAE_DIMS = (1, 2, 4, 8, 16, 49)   # ch. 6: l-DAE's latent sizes per 7 x 7 patch (49: every pixel)


@dataclass(frozen=True)
class Recipe:
    name: str
    model: object                 # a model config: UNetConfig, ClassifierConfig, MLPConfig
    task: str                     # a method registered in zoo.registry.METHODS
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
    prediction: str = "eps"       # what the network predicts: eps, x0 or v (diffusion); velocity (flow matching)
    p_uncond: float = 0.1         # label dropout for classifier-free guidance
    seed: int = 0
    # --- fields added after FORMAT 1 (they enter the hash only when they differ from these defaults) ---
    profile: str = "quick"        # the profile this preset belongs to (set by RECIPES); a teacher is taken at it
    condition: str = "labels"     # what a conditional denoiser is told, a source in zoo.registry.CONDITIONS:
                                  # 'labels' (human), 'kmeans' (clusters of the teacher's features, fixed before
                                  # training) or 'online' (ch. 9)
    clusters: int = 0             # number of clusters k for the 'kmeans' and 'online' conditions
    teacher: str = ""             # zoo encoder whose features are clustered or aligned to (chs. 9 and 12)
    teacher_init: str = "trained" # 'trained' or 'random' (the random-teacher control)
    align_depth: int = 0          # REPA: align the hidden tokens after this DiT block (0: no alignment)
    align_weight: float = 0.5     # REPA's lambda
    align_hidden: int = 2048      # REPA: hidden width of the projector MLP (the paper's 2048 for SiT-XL)
    curve_every: int = 0          # evaluate FID-FM and held-out loss every this many steps (0: never)
    cpu_bf16: bool = False        # on a CPU with bf16 instructions, train in bfloat16 autocast (GPUs always do)
    options: tuple = ()           # a new method's own settings, ((name, value), ...): read with option(r, name)


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Recipe)}
_LATER_FIELDS = list(_DEFAULTS)[list(_DEFAULTS).index("profile"):]


def recipe_hash(recipe: Recipe) -> str:
    """sha256 of the recipe's content (model config type included, and the teacher's recipe when it has one):
    changes whenever the recipe or what it learns from does. Fields added after FORMAT 1 count only when set,
    so adding a field does not invalidate weights trained before it existed."""
    fields = dataclasses.asdict(recipe)
    for name in _LATER_FIELDS:
        if fields[name] == _DEFAULTS[name]:
            del fields[name]
    payload = {"format": FORMAT, "model_type": type(recipe.model).__name__, **fields}
    if recipe.teacher:
        payload["teacher_hash"] = recipe_hash(get(recipe.teacher, recipe.profile))
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def abar(r: Recipe) -> torch.Tensor:
    """The recipe's noise schedule as abar_t, t = 0..T-1 (float64): the one place a recipe's schedule is built."""
    return schedules.alphas_cumprod(schedules.SCHEDULES[r.schedule](r.T))


def option(r: Recipe, name: str, default=None):
    """A method's own setting from `r.options` (default when the recipe does not set it)."""
    return dict(r.options).get(name, default)


_UNET = Recipe(name="unet_fmnist", model=UNetConfig(channels=(32, 48, 48), num_classes=10), task="denoise",
               data="fashion_mnist", steps=4000, batch_size=64, lr=1e-3, warmup=200)
_CLASSIFIER = Recipe(name="classifier_fmnist", model=ClassifierConfig(), task="classify", data="fashion_mnist",
                     steps=1200, batch_size=128, lr=1e-3, warmup=50, ema_decay=None, weight_decay=1e-4)
_NOISY = Recipe(name="noisy_classifier_fmnist", model=NoisyClassifierConfig(), task="classify_noisy",
                data="fashion_mnist", steps=2000, batch_size=128, lr=1e-3, warmup=50, p_uncond=0.0)
# Chapter 2 trains the three backbones at the U-Net's budget (same steps, batch, optimiser, schedule);
# the token models are sized so that their CPU step time is below the U-Net's (make bench).
# The DiT also records FID-FM every 500 steps: it is the baseline curve of representation alignment (ch. 12).
_DIT = replace(_UNET, name="dit_fmnist", model=DiTConfig(dim=96, depth=6, heads=4, patch=4), curve_every=500)
_UVIT = replace(_UNET, name="uvit_fmnist", model=UViTConfig(dim=64, depth=7, heads=4, patch=4))
_FULL_BUDGET = dict(steps=6000, batch_size=256, lr=5e-4, warmup=500)   # the full U-Net's
ABLATION_STEPS = {"dit_fmnist": {"quick": 400, "full": 1500}, "uvit_fmnist": {"quick": 800, "full": 1500}}
# ch. 4's dense tasks: an unconditional U-Net on 32x32 RGB toy scenes (segmentation and correspondence labels are
# never seen in training); 2,000 steps are the ~13 minutes that `make zoo` grants it on the CPU.
_SCENES = Recipe(name="unet_toyscenes", model=UNetConfig(in_channels=3, channels=(32, 48, 48), num_classes=None),
                 task="denoise", data="toy_scenes", steps=2000, batch_size=64, lr=1e-3, warmup=200, p_uncond=0.0)
# chs. 9 and 12: the self-supervised encoder (SimCLR, no labels), standing in for DINOv2; 2 x 128 views per step.
# The convolutional recipes of chs. 9 and 12 train in bf16 autocast on CPUs that have bf16 instructions: a step
# takes about half the time there (make bench), which keeps their `make zoo` share within its budget; the token
# models do not gain (their bf16 step was slower on this CPU) and stay in float32.
_SIMCLR = Recipe(name="simclr_fmnist", model=EncoderConfig(), task="contrastive", data="fashion_mnist", steps=2000,
                 batch_size=128, lr=2e-3, warmup=100, weight_decay=1e-4, ema_decay=None, p_uncond=0.0,
                 cpu_bf16=True)
# ch. 5: the SimCLR encoder's architecture distilled from the unconditional U-Net's decoder at step t (DreamTeacher's
# Eq. 17; labels never read): t = 10, the cell chapter 4 chose on validation images, and 0, 250 (DreamTeacher's
# best on ImageNet) and 500; and from the random-weight U-Net at t = 10, the control
_DISTILL = Recipe(name="distill_unet_t10", model=EncoderConfig(), task="distill", data="fashion_mnist", steps=1500,
                  batch_size=128, lr=2e-3, warmup=100, weight_decay=1e-4, ema_decay=None, p_uncond=0.0,
                  cpu_bf16=True, teacher="unet_fmnist_uncond", options=(("t", 10),))
# ch. 9: the book's U-Net conditioned on cluster ids of the SimCLR encoder instead of labels, at half the labelled
# U-Net's steps (the budget of `make zoo`); 'kmeans' clusters once before training, 'online' learns the clusters
# with Sinkhorn-Knopp while the denoiser trains.
_CLUSTER = replace(_UNET, name="cluster_unet_fmnist", steps=2000, condition="kmeans", clusters=10,
                   teacher="simclr_fmnist", cpu_bf16=True)
_ONLINE = replace(_CLUSTER, name="online_unet_fmnist", task="denoise_online", condition="online")
# ch. 4: the unconditional twin of the base U-Net (the same recipe without a label embedding), the pre-training
# that DDAE assumes
_UNCOND = replace(_UNET, name="unet_fmnist_uncond", model=replace(_UNET.model, num_classes=None), p_uncond=0.0)
_CLUSTER_FULL = dict(model=UNetConfig(channels=(64, 96, 96), emb_dim=256, num_classes=10), steps=4000,
                     batch_size=256, lr=5e-4, warmup=500, cpu_bf16=False)   # GPUs train in bf16 anyway
# ch. 12: REPA on the DiT of ch. 2 at its exact budget and seed; alignment after block 2 of 6 (REPA aligns block 8
# of SiT-XL's 28), lambda = 0.5 (REPA's default); the control aligns to the same encoder with random weights.
# The projector is 256 wide (the paper's 2048 is 1.8x SiT-XL's width; 512 made a REPA step cost 1.37x the DiT's
# on the CPU, 256 costs 1.2x: make bench).
_REPA = replace(_DIT, name="repa_dit_fmnist", task="denoise_aligned", teacher="simclr_fmnist", align_depth=2,
                align_weight=0.5, align_hidden=256)
# The full token backbones use 4 x 4 patches like the quick ones (49 tokens): at 2 x 2 a full DiT arm took 32 ms a
# step on the H100 (191 s for 6,000 steps; REPA 224 s), so chapter 12's three arms alone would have used the whole
# book's 10-minute full budget; at 4 x 4 the three arms, trained side by side, took 182-232 s each (H100).
_DIT_FULL = dict(model=DiTConfig(dim=192, depth=8, heads=6, patch=4), curve_every=1000)
# ch. 13: flow matching on the straight path (rectified flow) with the base U-Net's network, data, steps, batch,
# optimiser and label dropout: only the objective differs (the velocity eps - x0 of x_t = (1 - t) x0 + t eps)
_FLOW = replace(_UNET, name="flow_unet_fmnist", task="flow", prediction="velocity")
# ch. 13: one round of reflow of the flow-matching U-Net: 10,000 (sample, noise) pairs of its ODE (DPM-Solver++(2M),
# 20 steps), then 2,000 steps from its weights on those pairs
_REFLOW = replace(_FLOW, name="reflow_unet_fmnist", task="reflow", teacher="flow_unet_fmnist", steps=2000, lr=5e-4,
                  warmup=100, options=(("pairs", 10000), ("pair_steps", 20)))
# ch. 6: l-DAE's latent denoising autoencoder, a DiT on 7 x 7 patches (16 tokens, D = 49 pixels a patch) reading
# and writing images, its noise added in the first d coordinates of the patch-wise PCA; no labels. 2,000 steps of
# batch 128 are about 4.5 minutes on the CPU (make bench). l-DAE trains without weight decay.
_LDAE = Recipe(name="ldae_d8", model=LatentDAEConfig(d=8, dit=DiTConfig(patch=7, dim=96, depth=6, heads=4,
                                                                          num_classes=None)),
               task="ldae", data="fashion_mnist", steps=2000, batch_size=128, lr=1e-3, warmup=100, p_uncond=0.0)
_LDAE_FULL = dict(model=LatentDAEConfig(d=8, dit=DiTConfig(patch=7, dim=192, depth=8, heads=6, num_classes=None)),
                  steps=6000, batch_size=256, lr=5e-4, warmup=500)

# ch. 8: SimCLR with generated views (Ayromlou et al.'s Eq. 18) on a pool of 10,000 training images, SimCLR's
# recipe otherwise: the pool alone (p0 = 0), the second view's source replaced with probability 0.5 by an SDEdit
# view through the unconditional U-Net (sigma = 1.5, about t = 340 of its 1,000 steps), or by an unconditional
# sample unrelated to the image (the control)
_VIEWS = replace(_SIMCLR, name="simclr_pool", task="contrastive_generated", options=(("p0", 0.0), ("pool", 10000)))
_VIEW_ARMS = {"simclr_pool": {},
              "simclr_sdedit": dict(teacher="unet_fmnist_uncond",
                                    options=(("p0", 0.5), ("pool", 10000), ("views", "sdedit"), ("sigma", 1.5))),
              "simclr_sample": dict(teacher="unet_fmnist_uncond",
                                    options=(("p0", 0.5), ("pool", 10000), ("views", "sample")))}

# ch. 7: joint diffusion models (JDM): the unconditional U-Net with a classifier head on its encoder, started from
# unet_fmnist_uncond and trained 1,000 steps more on every image to denoise and on 600 labelled ones (1%) to classify,
# the cross-entropy weighted by alpha (JDM's 0.001, and 0.01, 0.1, 1). Controls at the same steps: the head on
# detached features (the diffusion model alone, probed), the cross-entropy alone from the same start (supervised
# fine-tuning) and from random weights (the classifier alone)
_JOINT = replace(_UNCOND, name="joint_unet_a1e-3", model=JointUNetConfig(channels=(32, 48, 48)), task="joint",
                 steps=1000, warmup=100, teacher="unet_fmnist_uncond", options=(("alpha", 1e-3), ("labels", 600)))
_JOINT_FULL = dict(model=JointUNetConfig(channels=(64, 96, 96), emb_dim=256), steps=1500, batch_size=256, lr=5e-4,
                   warmup=100)
JOINT_ALPHAS = {"1e-3": 1e-3, "1e-2": 1e-2, "1e-1": 0.1, "1": 1.0}
_JOINT_ARMS = {**{f"joint_unet_a{tag}": dict(options=(("alpha", a), ("labels", 600)))
                  for tag, a in JOINT_ALPHAS.items()},
               "joint_unet_probe": dict(options=(("alpha", 1.0), ("labels", 600), ("detach", True))),
               "joint_unet_finetune": dict(options=(("alpha", 1.0), ("labels", 600), ("denoise", False))),
               "joint_unet_classifier": dict(teacher="", options=(("alpha", 1.0), ("labels", 600),
                                                                  ("denoise", False)))}

# ch. 10: representation-conditioned generation (RCG). The representation is the SimCLR encoder's pooled embedding,
# standardised per image. The pixel generator is the book's U-Net told that vector instead of a label (dropped with
# probability 0.1), at the budget of chapter 9's cluster-conditioned U-Net (2,000 steps, bf16 on the CPU), so that the
# two ways of conditioning on the same encoder compare at equal cost; the representation generator (RDM) is a residual
# MLP (4 blocks of width 192: 0.5 M parameters, 1.1 MB shipped) predicting x0 (RCG's parameterisation), on the book's
# linear schedule. The control repeats both on the embeddings
# of the same encoder with random weights.
_RCG = replace(_CLUSTER, name="rcg_unet_fmnist", model=RepUNetConfig(channels=(32, 48, 48), rep_dim=128),
               task="denoise_rep", condition="representation", clusters=0)
_RCG_FULL = dict(model=RepUNetConfig(channels=(64, 96, 96), emb_dim=256, rep_dim=128), steps=4000, batch_size=256,
                 lr=5e-4, warmup=500, cpu_bf16=False)
# ch. 6: a diffusion autoencoder: the semantic encoder (SimCLR's architecture) and the RCG U-Net as its decoder,
# trained together by denoising alone on the same budget as RCG's pixel generator, the code never dropped
_DIFFAE = replace(_RCG, name="diffae_fmnist", model=DiffAEConfig(channels=(32, 48, 48), rep_dim=128), task="diffae",
                  condition="labels", teacher="", p_uncond=0.0)
_DIFFAE_FULL = dict(_RCG_FULL, model=DiffAEConfig(channels=(64, 96, 96), emb_dim=256, rep_dim=128))
_RDM = Recipe(name="rdm_simclr", model=ResMLPConfig(dim=128, width=192), task="rdm", data="fashion_mnist", steps=3000,
              batch_size=256, lr=1e-3, warmup=100, weight_decay=0.01, prediction="x0", p_uncond=0.0,
              teacher="simclr_fmnist")
_RDM_FULL = dict(model=ResMLPConfig(dim=128, width=1024, blocks=6), steps=6000, batch_size=1024)

# ch. 11: the test bed of diffusion self-guidance: the toy-scene U-Net (chapter 4's) told one-object scenes by two
# tokens (the object's class and colour, the background's colour) through cross-attention at 16 x 16 and 8 x 8,
# with the tokens dropped with probability 0.1 (classifier-free guidance), bf16 on the CPU
_TOKENS = Recipe(name="token_unet_toyscenes", model=TokenUNetConfig(in_channels=3, channels=(32, 48, 48)),
                 task="denoise_tokens", data="toy_scenes", steps=1500, batch_size=64, lr=1e-3, warmup=200,
                 cpu_bf16=True)


def _ldae(name, d, profile, **change):
    """An l-DAE recipe at latent size d and profile, with recipe fields changed (options, p_uncond, ...)."""
    base = _LDAE if profile == "quick" else replace(_LDAE, **_LDAE_FULL)
    model = replace(base.model, d=d, **({"dit": change.pop("dit")} if "dit" in change else {}))
    return replace(base, name=name, model=model, **change)


_TOY = Recipe(name="toy_mlp_eps", model=MLPConfig(), task="denoise", data="toy2d/8gaussians", steps=3000,
              batch_size=512, lr=2e-3, warmup=100, p_uncond=0.0)

RECIPES = {
    # the base model of the book: class-conditional U-Net with label dropout (also serves unconditionally)
    "unet_fmnist": {
        "quick": _UNET,
        "full": replace(_UNET, model=UNetConfig(channels=(64, 96, 96), emb_dim=256), steps=6000,
                        batch_size=256, lr=5e-4, warmup=500),
    },
    "unet_fmnist_uncond": {"quick": _UNCOND,
                           "full": replace(_UNCOND, model=UNetConfig(channels=(64, 96, 96), emb_dim=256,
                                                                     num_classes=None), steps=6000,
                                           batch_size=256, lr=5e-4, warmup=500)},
    # the base U-Net's flow-matching twin: the same recipe, trained on the straight path (ch. 13)
    "flow_unet_fmnist": {"quick": _FLOW,
                         "full": replace(_FLOW, model=UNetConfig(channels=(64, 96, 96), emb_dim=256), steps=6000,
                                         batch_size=256, lr=5e-4, warmup=500)},
    "reflow_unet_fmnist": {"quick": _REFLOW,
                           "full": replace(_REFLOW, model=UNetConfig(channels=(64, 96, 96), emb_dim=256), steps=3000,
                                           batch_size=256, warmup=300, options=(("pairs", 50000), ("pair_steps", 20)))},
    # ... and reflow's control: the flow-matching U-Net trained as many steps longer on independent pairs of real data
    "flow_unet_fmnist_longer": {p: replace(r, name="flow_unet_fmnist_longer", task="flow", options=())
                                for p, r in (("quick", _REFLOW), ("full", replace(
                                    _REFLOW, model=UNetConfig(channels=(64, 96, 96), emb_dim=256), steps=3000,
                                    batch_size=256, warmup=300)))},
    # the evaluation classifier: its 128-d features define FID-FM, its predictions sample accuracy
    "classifier_fmnist": {"quick": _CLASSIFIER, "full": replace(_CLASSIFIER, steps=4000, batch_size=256)},
    # the noise-aware classifier p(y | x_t, t) of classifier guidance (ch. 3)
    "noisy_classifier_fmnist": {"quick": _NOISY, "full": replace(_NOISY, steps=6000, batch_size=256)},
    # the backbones of ch. 2 at the U-Net's budget; the DiT is also the baseline of representation alignment
    "dit_fmnist": {"quick": _DIT, "full": replace(_DIT, **_DIT_FULL, **_FULL_BUDGET)},
    "uvit_fmnist": {"quick": _UVIT, "full": replace(_UVIT, model=UViTConfig(dim=192, depth=9, heads=6, patch=4),
                                                    **_FULL_BUDGET)},
    "unet_toyscenes": {"quick": _SCENES,
                       "full": replace(_SCENES, model=UNetConfig(in_channels=3, channels=(64, 96, 96), emb_dim=256,
                                                                 num_classes=None), **_FULL_BUDGET)},
    "simclr_fmnist": {"quick": _SIMCLR, "full": replace(_SIMCLR, steps=6000, batch_size=512, cpu_bf16=False)},
    # ch. 5: distilled students, one per teacher timestep, and the random-teacher control
    **{f"distill_unet_t{t}": {p: replace(r, name=f"distill_unet_t{t}", options=(("t", t),))
                              for p, r in (("quick", _DISTILL), ("full", replace(_DISTILL, steps=5000, batch_size=256)))}
       for t in (0, 10, 250, 500)},
    "distill_random_unet_t10": {p: replace(r, name="distill_random_unet_t10", teacher_init="random")
                                for p, r in (("quick", _DISTILL), ("full", replace(_DISTILL, steps=5000,
                                                                                   batch_size=256)))},
    # ch. 6: l-DAE at latent sizes d = 1 .. 49 (d = 49 = D: the pixel-space denoising autoencoder)
    **{f"ldae_d{d}": {p: _ldae(f"ldae_d{d}", d, p) for p in ("quick", "full")} for d in LDAE_DIMS},
    # ... at d = 8 with one noise level (sigma = 1/3, the paper's ablation) and with class labels told (dropout 0.1)
    "ldae_d8_single": {p: _ldae("ldae_d8_single", 8, p, options=(("sigma", 1 / 3),)) for p in ("quick", "full")},
    "ldae_d8_labels": {p: _ldae("ldae_d8_labels", 8, p, p_uncond=0.1,
                                dit=replace((_LDAE if p == "quick" else replace(_LDAE, **_LDAE_FULL)).model.dit,
                                            num_classes=10))
                       for p in ("quick", "full")},
    # ch. 7: joint models at four weights of the cross-entropy, and the classifier alone
    **{name: {"quick": replace(_JOINT, name=name, **arm),
              "full": replace(_JOINT, name=name, **arm, **_JOINT_FULL)}
       for name, arm in _JOINT_ARMS.items()},
    # ch. 10: RCG's pixel and representation generators, on the trained encoder and on its random-weight control
    **{name: {"quick": replace(_RCG, name=name, teacher_init=init),
              "full": replace(_RCG, name=name, teacher_init=init, **_RCG_FULL)}
       for name, init in (("rcg_unet_fmnist", "trained"), ("rcg_random_unet_fmnist", "random"))},
    **{name: {"quick": replace(_RDM, name=name, teacher_init=init),
              "full": replace(_RDM, name=name, teacher_init=init, **_RDM_FULL)}
       for name, init in (("rdm_simclr", "trained"), ("rdm_random_simclr", "random"))},
    "diffae_fmnist": {"quick": _DIFFAE, "full": replace(_DIFFAE, **_DIFFAE_FULL)},
    "token_unet_toyscenes": {"quick": _TOKENS, "full": replace(
        _TOKENS, model=TokenUNetConfig(in_channels=3, channels=(64, 96, 96), emb_dim=256), cpu_bf16=False,
        **_FULL_BUDGET)},
    # ch. 8: SimCLR on a pool of training images, with and without generated views
    **{name: {"quick": replace(_VIEWS, name=name, **arm),
              "full": replace(_VIEWS, name=name, **arm, steps=6000, batch_size=512, cpu_bf16=False)}
       for name, arm in _VIEW_ARMS.items()},
    # ch. 9: self-labelled (k-means of SimCLR features) and online (Sinkhorn-Knopp) cluster conditioning
    "cluster_unet_fmnist": {"quick": _CLUSTER, "full": replace(_CLUSTER, **_CLUSTER_FULL)},
    "online_unet_fmnist": {"quick": _ONLINE, "full": replace(_ONLINE, **_CLUSTER_FULL)},
    # ... and its two controls: the same pipeline on k-means ids of raw pixels (no encoder), and on ids drawn at
    # random per image (no information about the image at all)
    **{name: {"quick": replace(_CLUSTER, name=name, condition=cond, teacher=""),
              "full": replace(_CLUSTER, name=name, condition=cond, teacher="", **_CLUSTER_FULL)}
       for name, cond in (("cluster_unet_fmnist_pixels", "kmeans_pixels"),
                          ("cluster_unet_fmnist_random", "random"))},
    # ... and with more clusters (an extra: `make zoo-extras`)
    **{f"cluster_unet_fmnist_k{k}": {"quick": replace(_CLUSTER, name=f"cluster_unet_fmnist_k{k}", clusters=k,
                                                      model=replace(_CLUSTER.model, num_classes=k)),
                                     "full": replace(_CLUSTER, name=f"cluster_unet_fmnist_k{k}", clusters=k,
                                                     **{**_CLUSTER_FULL, "model": UNetConfig(
                                                         channels=(64, 96, 96), emb_dim=256, num_classes=k)})}
       for k in (50, 200)},
    # ch. 12: representation alignment, and its random-teacher control
    "repa_dit_fmnist": {"quick": _REPA, "full": replace(_REPA, align_depth=3, **_DIT_FULL, **_FULL_BUDGET)},
    "repa_random_dit_fmnist": {p: replace(r, name="repa_random_dit_fmnist", teacher_init="random")
                               for p, r in (("quick", _REPA),
                                            ("full", replace(_REPA, align_depth=3, **_DIT_FULL, **_FULL_BUDGET)))},
    # REPA's lambda and depth varied around each profile's default (quick: lambda 0.5 at block 2 of 6; full: block 3
    # of 8): lambda 0.25 and 1; one block shallower; two blocks deeper (an extra: `make zoo-extras`)
    **{f"repa_dit_fmnist_{tag}": {p: replace(r, name=f"repa_dit_fmnist_{tag}", **change(r))
                                  for p, r in (("quick", _REPA),
                                               ("full", replace(_REPA, align_depth=3, **_DIT_FULL, **_FULL_BUDGET)))}
       for tag, change in (("l0.25", lambda r: dict(align_weight=0.25)), ("l1", lambda r: dict(align_weight=1.0)),
                           ("shallow", lambda r: dict(align_depth=r.align_depth - 1)),
                           ("deep", lambda r: dict(align_depth=r.align_depth + 2)))},
    # three tiny 2-D denoisers that differ only in what they predict (ch. 1, eps vs x0 vs v)
    **{f"toy_mlp_{kind}": {"quick": replace(_TOY, name=f"toy_mlp_{kind}", prediction=kind),
                           "full": replace(_TOY, name=f"toy_mlp_{kind}", prediction=kind, steps=5000)}
       for kind in ("eps", "x0", "v")},
    # ... and three 2-D flows from Gaussian noise to the same toy (ch. 13): independent pairs, minibatch-OT pairs,
    # and one round of reflow of the first (20,000 pairs of its ODE, 50 steps)
    **{f"toy_mlp_{tag}": {p: replace(_TOY, name=f"toy_mlp_{tag}", prediction="velocity", **change,
                                     steps=3000 if p == "quick" else 5000)
                          for p in ("quick", "full")}
       for tag, change in (("flow", dict(task="flow")), ("flow_ot", dict(task="flow_ot")),
                           ("reflow", dict(task="reflow", teacher="toy_mlp_flow",
                                           options=(("pairs", 20000), ("pair_steps", 50)))))},
}

# ch. 2's ablations: short runs of each token backbone with and without its design choice; only their loss
# curves and metrics are kept (RECORD_ONLY). The first arm of each pair is the main recipe cut short, so
# with the same seed it repeats the main run's first steps exactly. name: (base, model change, recipe change).
# The last two ask whether the shared learning rate (the U-Net's 1e-3) handicaps the transformers: the same short
# runs at 3e-4, nearer the rates their papers train with (DiT: 1e-4, U-ViT: 2e-4, both at batch 256).
ABLATIONS = {"dit_ablation_adaln_zero": ("dit_fmnist", {}, {}),
             "dit_ablation_plain_init": ("dit_fmnist", {"zero_init": False}, {}),
             "uvit_ablation_long_skips": ("uvit_fmnist", {}, {}),
             "uvit_ablation_no_skips": ("uvit_fmnist", {"long_skips": False}, {}),
             "dit_ablation_lr3e-4": ("dit_fmnist", {}, {"lr": 3e-4}),
             "uvit_ablation_lr3e-4": ("uvit_fmnist", {}, {"lr": 3e-4})}
for _name, (_base, _change, _recipe_change) in ABLATIONS.items():
    RECIPES[_name] = {p: replace(r, name=_name, model=replace(r.model, **_change), steps=ABLATION_STEPS[_base][p],
                                 curve_every=0, **_recipe_change)
                      for p, r in RECIPES[_base].items()}
REPA_SWEEP = ("repa_dit_fmnist_l0.25", "repa_dit_fmnist_l1", "repa_dit_fmnist_shallow", "repa_dit_fmnist_deep")
RECORD_ONLY = frozenset(ABLATIONS) | frozenset(REPA_SWEEP)   # the zoo ships their training record, not weights
# Extras: shipped quick recipes that plain `make zoo` leaves alone (they would overrun its time budget); `make
# zoo-extras` trains them (chapter 9's k = 50 and 200, chapter 12's lambda/depth sweep; about an hour in all).
EXTRAS = frozenset({"cluster_unet_fmnist_k50", "cluster_unet_fmnist_k200", *REPA_SWEEP})
RECIPES = {name: {p: replace(r, profile=p) for p, r in presets.items()} for name, presets in RECIPES.items()}
# Shipped in float32: a teacher whose features are clustered into another model's training ids. Rounding its weights
# to float16 moved its k-means clusters (adjusted Rand index 0.82 against the float32 ids, the labels permuted), so
# the ids a chapter recomputes would no longer be those the cluster-conditioned U-Nets were trained with.
FULL_PRECISION = frozenset({"simclr_fmnist"})
SHIPPED = sorted(name for name, presets in RECIPES.items() if "quick" in presets)   # what the package ships
CORE = [name for name in SHIPPED if name not in EXTRAS]                               # what `make zoo` trains


def get(name: str, profile: str = "quick", seed: int = 0) -> Recipe:
    """The recipe `name` at a profile, for a training seed."""
    if not isinstance(name, str) or name not in RECIPES:
        raise bad(ZooError, "name", name, f"the zoo has {sorted(RECIPES)}", "unknown zoo model")
    if profile not in RECIPES[name]:
        raise bad(ZooError, "profile", profile, f"zoo model {name!r} has the recipes {sorted(RECIPES[name])}; "
                  "full-only models are trained (on a GPU) with profile='full'")
    seed = check_int(seed, "seed", "pass a training seed >= 0 (0 is the shipped model)", low=0, kind=ZooError)
    return replace(RECIPES[name][profile], profile=profile, seed=seed)
