"""AgileIR / SwinIR-light models, the GSWA op and checkpoint loading."""
from .config import PRESETS, SRConfig, preset
from .gswa import gswa
from .load import LoadedModel, ModelLoadError, default_checkpoint, infer_config, load_model, save_safetensors
from .network import SRTransformer, build_model

__all__ = ["PRESETS", "SRConfig", "preset", "gswa", "LoadedModel", "ModelLoadError", "default_checkpoint",
           "infer_config", "load_model", "save_safetensors", "SRTransformer", "build_model"]
