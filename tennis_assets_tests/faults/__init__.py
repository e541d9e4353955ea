"""Fault injection: real processes, real signals, real full file systems and real concurrent runs,
each test asserting on what is left on disk and in the registry afterwards."""
