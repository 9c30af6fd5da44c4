"""Benchmarks of the WRN Lab engine (run as `python -m bench.throughput`, `python -m bench.time_to_accuracy`)."""
