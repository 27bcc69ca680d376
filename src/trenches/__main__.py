"""``python -m trenches`` runs the CLI."""

from trenches.cli import main

# Guarded: the worker processes of a local Dask cluster (``local-cluster:N``) start by
# importing the main module again, under another name.
if __name__ == "__main__":
    main()
