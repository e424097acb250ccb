"""Benchmarks: each script compares jaxfeat with a reference in the same run."""
