"""Sub-commands of the ``wbc-classic`` command, one module each."""
