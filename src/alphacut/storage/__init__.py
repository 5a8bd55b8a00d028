"""Service state: metadata in a SQL database (SQLAlchemy), image files behind a BlobStore."""

from alphacut.storage.blobs import BlobStore, LocalBlobStore
from alphacut.storage.database import Database

__all__ = ["BlobStore", "Database", "LocalBlobStore"]
