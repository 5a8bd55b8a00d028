"""The inference port and its two implementations: in this process (:mod:`.local`) and on a
Celery fleet (:mod:`.celery_client`, speaking :mod:`.wire`); :mod:`.factory` picks one from the
settings. See :mod:`.port`."""
