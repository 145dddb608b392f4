"""Benchmarks: batch inference throughput (``python -m arena_seg.bench.batch``)."""
