"""Benchmarks: each module bench_<name>.py measures our code against a named anchor in the same run."""
