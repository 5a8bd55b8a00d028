"""alphacut's version, from the installed package's metadata (a ground-floor fact: the CLI,
the HTTP service and the URL fetcher's User-Agent all say it)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("alphacut")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
