"""The model zoo (docs/ARCHITECTURE.md, "The zoo"): recipes, the registry through which methods plug in, the one
training loop, the weight store and its manifest, golden outputs, and the loading API.

    dr.zoo.get("unet_fmnist", profile)        -> the trained network (EMA weights, eval mode, CPU)
    dr.zoo.denoiser("unet_fmnist", profile)   -> the same network behind the denoiser contract

The zoo knows no method by name: a recipe's task and condition are looked up in `registry`. It imports the
diffusion core, models, data and support, never `methods` or anything above.
"""
from . import golden, recipes, registry, store, training
from .api import INITS, condition_ids, denoiser, get, load, model_id, record, shipped, shipped_entry, untrained
from .build import build_model, evaluate, fit, load_into, training_data
from .shipping import ship, stale, store_weights, verify
from .store import ZooError, cached_path, checkpoint_path, read_manifest, retrain_command
