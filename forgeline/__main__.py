"""`python -m forgeline` is the `forgeline` command: the kernel's commands plus the groups the
installed services and the gateway declare (forgeline.cli.loader)."""

from forgeline.cli import main

main()
