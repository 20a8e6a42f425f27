"""grantctl: keep a Nylas application's grants equal to a YAML manifest kept in git."""

# The one place the version is written, and pyproject.toml reads it from here. Asking
# importlib.metadata instead would cost every command about 50 ms of start-up.
__version__ = "0.1.0"
