"""`python -m forgeline` is the `forgeline` command."""

from forgeline.cli import main

main()
