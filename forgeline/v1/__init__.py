"""Generated from protos/forgeline/v1 by `make proto`. Never edited by hand."""
