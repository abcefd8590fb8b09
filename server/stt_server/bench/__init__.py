"""``stt-bench``: load tests with seed 002's SLO report, and offline throughput comparisons."""
