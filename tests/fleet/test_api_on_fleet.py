"""The images, Ximilar and web page suites, unchanged, against API replicas whose removals
run on the fleet (the ``server`` and ``make_server`` fixtures of this folder's conftest; the
remove.bg suite: test_removebg_on_fleet.py, a module of its own for its own fixtures)."""

from __future__ import annotations

from api.test_images import *  # noqa: F403
from api.test_ximilar import *  # noqa: F403
from web.test_page import *  # noqa: F403

# The embedded engine's own queue, patched full: the fleet's is test_faults' full queue.
del test_full_engine_answers_503  # noqa: F821
# Counts every result file in the blob store, which it assumes is its own: a fleet's is shared.
del test_outputs_expire_and_their_files_are_deleted  # noqa: F821
