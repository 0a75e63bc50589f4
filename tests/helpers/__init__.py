"""
Helpers shared by the tests, the benchmarks and the scripts (one place, imported as
``tests.helpers.<module>``; nothing here is a test):

- ``emulator``: a connection pointing at the emulator, and its request log without control calls;
- ``processes``: Airflow components (and the emulator) as real processes, stopped by PID;
- ``sensor_modes``: stand-ins for the task context and one driver per logs-sensor mode.

This package imports nothing itself, so importing one module does not load Airflow for another.
"""
