"""Benchmarks behind `griddispatch bench`."""
