"""`python -m closewise` runs the CLI."""

from closewise.cli.app import main

main()
