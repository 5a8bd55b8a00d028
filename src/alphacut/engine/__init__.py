"""Decode, run a model, compose and encode: no HTTP, no storage.

The library's front door is :mod:`alphacut.engine.pipeline` (``Remover``, ``Cutout``), also
reachable as ``alphacut.Remover``; this package's own import loads nothing heavy, so that the
engine's settings (:mod:`alphacut.engine.config`) can be read without numpy or a runtime.
"""
