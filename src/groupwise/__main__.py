"""``python -m groupwise ...`` runs the same command as the ``groupwise`` script."""

from groupwise.cli import main

main()
