"""The sparsity concept shared by the simulator and the real-model runtime: which linear inputs are
N:M-pruned (``policy``), how much of the work that covers (``coverage``) and how scores are formed
(``scoring``). Imports nothing from ampersim but ``core`` and ``models``."""
