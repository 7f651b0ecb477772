"""edgemti: multi-task NLP inference on a simulated heterogeneous-memory edge accelerator.

Subpackages map to the repository's top-level folders:
``edgemti.tasks`` (tasks/), ``edgemti.compiler`` (compiler/), ``edgemti.formats`` (formats/),
``edgemti.runtime`` (runtime/), ``edgemti.hwmodel`` (hwmodel/).
"""

__version__ = "0.1.0"
