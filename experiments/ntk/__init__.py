"""Experiments of pillar 2: NTKs and shortcut learning (`jaxfeat.ntk`)."""
