"""edgemti.studies: studies that drive the whole pipeline (tasks -> compiler -> runtime -> hwmodel).

One module per study, each a library function the CLI calls and formats: ``demo`` (the offline end-to-end job),
``report`` (a build priced on an architecture), ``paper`` (the paper's Fig. 6 / Table III / abstract figures,
three columns: paper, ours under the paper profile, ours under the default profile), ``faults`` (RRAM bit-error
sweeps), ``sweep`` (design-space exploration) and ``xcheck`` (the hardware model against zigzag). The paper's
numbers are read only from ``hwmodel/data/paper_fu2023.toml`` (``edgemti.hwmodel.targets``).
"""
