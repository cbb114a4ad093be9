"""The scripts `make` runs beside the suite: demo, benchmarks, crash trials, evaluations,
the feed-compatibility run. None of them is collected by pytest."""
