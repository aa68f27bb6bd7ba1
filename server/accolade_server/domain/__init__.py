"""Plain domain values and validation; knows nothing of gRPC or SQL."""
