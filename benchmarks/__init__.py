"""
Benchmarks of airflow-provider-phenv next to apache-airflow-providers-http, against the emulator.

Run them with ``scripts/bench.sh`` (full) or ``scripts/bench.sh --smoke`` (tiny sizes, for CI). Each
item of the benchmark issue has its own module; :mod:`benchmarks.harness` is the shared part (the
emulator, the connections, and counting requests, connections and bytes from its request log).
These are measurements, not tests: a missed floor is reported, never raised.
"""
