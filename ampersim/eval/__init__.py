"""Accuracy of pruned models: perplexity and the offline quiz (``metrics``), the per-layer
sensitivity pass that picks amber skip layers (``sensitivity``)."""
