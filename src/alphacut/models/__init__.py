"""Model weights: what exists (registry), what is on disk (store), and fetching them (install)."""

from alphacut.models.registry import MODELS, ModelSpec, model_names
from alphacut.models.store import ModelStatus, ModelStore

__all__ = ["MODELS", "ModelSpec", "ModelStatus", "ModelStore", "model_names"]
