"""The `grantctl` subcommands: thin click wrappers around `reconciler.workflow`."""
