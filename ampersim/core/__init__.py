"""Foundations every other package uses: errors, sourced numbers, N:M patterns, safe YAML io,
catalogs of shipped data, resource paths and the project's vocabulary (``ampersim.core.vocab``)."""
