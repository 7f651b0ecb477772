"""edgemti.runtime."""
