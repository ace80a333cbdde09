"""Every installed regularizer, forgeline's own and third parties', against the contract.

The suite is forgeline.testing's (the one third-party packages run).
"""

from __future__ import annotations

from forgeline.testing.suites.regularizers import *  # noqa: F403
