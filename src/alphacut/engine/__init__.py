"""Decode, run a model, compose and encode: no HTTP, no storage."""

from alphacut.engine.pipeline import Cutout, Remover, remove

__all__ = ["Cutout", "Remover", "remove"]
