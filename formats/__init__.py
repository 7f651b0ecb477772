"""edgemti.formats."""
