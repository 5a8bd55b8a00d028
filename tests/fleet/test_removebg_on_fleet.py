"""The remove.bg suite, unchanged, against API replicas whose removals run on the fleet: its
effects (crop, shadow, a background colour or photo) are applied on the worker, where the
cut-out is made, and a background photo crosses to it through the blob store. A module of its
own: its fixtures (the file origin) share names with other suites'."""

from __future__ import annotations

from api.test_removebg import *  # noqa: F403
