"""Real throwaway servers and exposition parsing, shared by the test suite and the benchmarks."""
