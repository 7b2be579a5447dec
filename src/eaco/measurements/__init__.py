"""Loaders for published measurements (the EaCO paper's tables)."""
