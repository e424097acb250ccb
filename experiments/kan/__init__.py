"""Experiments of pillar 3: KAN spline-based feature selectors (`jaxfeat.kan`)."""
