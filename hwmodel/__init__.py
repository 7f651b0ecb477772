"""edgemti.hwmodel."""
