"""Private helpers shared by the jaxfeat pillars (no pillar is imported here)."""
