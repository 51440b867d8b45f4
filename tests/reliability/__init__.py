"""Reliability suite: crash consistency, process kills, load, quota races, hostile input, faults, fuzzing."""
