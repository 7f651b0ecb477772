"""edgemti.compiler."""
