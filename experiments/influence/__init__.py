"""Experiments of pillar 4: influence functions and EK-FAC (`jaxfeat.influence`)."""
