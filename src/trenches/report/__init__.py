"""Plots and reports: the per-problem graph across model versions."""
