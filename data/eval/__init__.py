"""Evaluation: eval suites and their criteria, reply metrics, scoring runs, reports and sweeps."""
