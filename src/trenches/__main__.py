"""``python -m trenches`` runs the CLI."""

from trenches.cli import main

main()
