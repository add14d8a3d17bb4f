"""Independent plain-PyTorch / NumPy implementations of each family, for tests and benchmarks."""
