"""Experiments of pillar 1: deep linear JEPA versus MAE (`jaxfeat.linear_ssl`)."""
