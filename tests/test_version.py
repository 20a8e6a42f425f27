"""The version grantctl reports is the one its installed distribution carries."""

from importlib.metadata import version

from click.testing import CliRunner

from reconciler import __version__
from reconciler.cli import grantctl


def test_version_matches_installed_distribution() -> None:
    assert __version__ == version("nylas-grant-reconciler")


def test_version_flag_prints_the_package_version() -> None:
    result = CliRunner().invoke(grantctl, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"grantctl, version {__version__}"
