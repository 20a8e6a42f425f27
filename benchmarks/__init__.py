"""Reproducible performance runs of grantctl against a sequential baseline in the same run."""
