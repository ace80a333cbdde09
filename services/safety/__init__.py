"""The safety service: input filters, output rules, fairness audits and the audit log."""
