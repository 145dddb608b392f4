"""Benchmarks: few-shot quality, speed and memory, batch-inference throughput (`python -m arena_seg.bench.batch`)."""
