"""`jaxfeat.influence`: not yet implemented (see the issue tracker).

| name | what it is |
|---|---|
"""

__all__: list[str] = []
