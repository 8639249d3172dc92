"""Denoising backbones, the evaluation classifier and the self-supervised encoder, by name (survey §2.2)."""
from . import architecture
from .classifier import Classifier, ClassifierConfig
from .diff_ae import DiffAE, DiffAEConfig
from .dit import DiT, DiTConfig
from .encoder import Encoder, EncoderConfig
from .joint_unet import JointUNet, JointUNetConfig
from .latent_dae import LatentDAE, LatentDAEConfig
from .mlp import MLP, MLPConfig
from .noisy_classifier import NoisyClassifier, NoisyClassifierConfig
from .rep_unet import RepUNet, RepUNetConfig
from .res_mlp import ResMLP, ResMLPConfig
from .token_unet import TokenUNet, TokenUNetConfig
from .unet import UNet, UNetConfig
from .uvit import UViT, UViTConfig

# config type -> module class: a recipe names a config, the zoo builds the module from it.
MODELS = {UNetConfig: UNet, DiTConfig: DiT, UViTConfig: UViT, ClassifierConfig: Classifier, MLPConfig: MLP,
          NoisyClassifierConfig: NoisyClassifier, EncoderConfig: Encoder,
          LatentDAEConfig: LatentDAE, JointUNetConfig: JointUNet, RepUNetConfig: RepUNet,
          ResMLPConfig: ResMLP, TokenUNetConfig: TokenUNet, DiffAEConfig: DiffAE}


def build(cfg):
    """The module for a model config."""
    return MODELS[type(cfg)](cfg)
