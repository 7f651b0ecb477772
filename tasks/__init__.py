"""edgemti.tasks."""
