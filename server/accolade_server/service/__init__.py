"""Use cases: validate, run one unit of work, return domain values."""
