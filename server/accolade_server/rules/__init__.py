"""The rule engine: pure and I/O-free."""
