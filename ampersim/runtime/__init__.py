"""Running pruned models in torch: ``sparsify`` (prefill-only hooks on a model's linears),
activation-sparse linear layers for the cuSPARSELt 2:4 path, and outstanding-sparse (W8A8)."""
