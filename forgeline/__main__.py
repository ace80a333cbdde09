"""`python -m forgeline` is the `forgeline` command (kernel commands plus the gateway's)."""

from forgeline.gateway.cli import main

main()
