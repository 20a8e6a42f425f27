"""grantctl: keep a Nylas application's grants equal to a YAML manifest kept in git."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nylas-grant-reconciler")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
