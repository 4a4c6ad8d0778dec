"""The environment a measurement ran in, and which hardware profile a GPU corresponds to."""
from __future__ import annotations

import platform
import re
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

from ampersim.core.deps import require
from ampersim.core.errors import InvalidArgument, MissingDependency
from ampersim.measure.records import Environment

if TYPE_CHECKING:
    from ampersim.hardware.profile import HardwareProfile

# GPU name as the driver reports it (regex, case-insensitive) -> shipped base profile name.
GPU_PROFILES: tuple[tuple[str, str], ...] = (
    (r"\bH200\b", "h200"),
    (r"\bH100\b.*\bPCIe\b", "h100-pcie"),
    (r"\bH100\b", "h100-sxm"),
    (r"\bA100\b.*\bPCIe\b", "a100-pcie"),
    (r"\bA100\b", "a100-sxm"),
    (r"\bL40S\b", "l40s"),
    (r"\bL4\b", "l4"),
    (r"\bB200\b", "b200"),
    (r"\bMI300X\b", "mi300x"),
    (r"\bRTX 4090\b", "rtx4090"),
)
_NVIDIA_SMI_FIELDS = ("clocks.current.sm", "clocks.max.sm", "clocks.current.memory", "clocks.max.memory",
                      "power.limit", "temperature.gpu", "pstate")


def profile_for_gpu(gpu_name: str) -> str | None:
    """The shipped profile describing ``gpu_name`` ('NVIDIA H100 80GB HBM3' -> 'h100-sxm'), or None."""
    for pattern, profile in GPU_PROFILES:
        if re.search(pattern, gpu_name, re.IGNORECASE):
            return profile
    return None


def base_profile_name(profile: HardwareProfile) -> str:
    """The shipped profile ``profile`` was calibrated from (its ``base_profile``; 'h200-calibrated' -> 'h200'
    for profiles written before the field), or its own name."""
    return profile.base_profile or profile.name.removesuffix("-calibrated")


def require_torch(purpose: str) -> Any:
    """Import torch and return it; otherwise a one-line error naming the extra that installs it."""
    return require("torch", purpose)


def require_cuda() -> Any:
    """Import torch and return it if a CUDA device is usable; otherwise a one-line error."""
    torch = require_torch("ampersim measure (with a CUDA build of torch)")
    if not torch.cuda.is_available():
        raise MissingDependency(f"ampersim measure needs a CUDA GPU; torch {torch.__version__} sees none "
                                "(CUDA_VISIBLE_DEVICES, driver, or a CPU-only torch build)")
    return torch


def _nvidia_smi() -> dict[str, str]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {}
    query = ",".join(_NVIDIA_SMI_FIELDS + ("driver_version",))
    try:
        out = subprocess.run([exe, f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True).stdout.splitlines()[0]
    except (subprocess.SubprocessError, OSError, IndexError):
        return {}
    values = [v.strip() for v in out.split(",")]
    return dict(zip(_NVIDIA_SMI_FIELDS + ("driver",), values))


def capture_environment(device: str = "cuda") -> Environment:
    """GPU name, SM count, L2 and memory size, clocks, driver, CUDA, torch, cuSPARSELt, Python."""
    import torch

    env: dict[str, Any] = {"device": device, "torch": torch.__version__, "python": platform.python_version(),
                           "platform": platform.platform()}
    if device == "cpu":
        return Environment(**env, gpu="cpu (dry run: not a GPU measurement)", sm_count=0, l2_bytes=2**20)
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    smi = _nvidia_smi()
    return Environment(
        **env,
        gpu=props.name,
        profile=profile_for_gpu(props.name),
        sm_count=props.multi_processor_count,
        l2_bytes=int(getattr(props, "L2_cache_size", 0)),
        memory_bytes=int(props.total_memory),
        capability=f"{props.major}.{props.minor}",
        cuda=torch.version.cuda,
        cusparselt=_cusparselt_version(torch),
        driver=smi.pop("driver", None),
        nvidia_smi=smi,
    )


def _cusparselt_version(torch: Any) -> int | None:
    backend = getattr(torch.backends, "cusparselt", None)
    if backend is None or not backend.is_available():
        return None
    return int(backend.version())


def check_gpu_matches_profile(gpu_name: str, profile: HardwareProfile, *, force: bool) -> str | None:
    """Refuse comparing a measurement of one GPU with another GPU's profile.

    Returns a warning text when ``force`` overrides a mismatch, None when they match.
    """
    expected = profile_for_gpu(gpu_name)
    if expected == base_profile_name(profile):
        return None
    what = f"measurements from '{gpu_name}' (profile {expected or 'unknown'}) vs profile '{profile.name}'"
    if not force:
        raise InvalidArgument(f"{what}: GPU mismatch; set force to compare anyway", field="force")
    return f"WARNING: {what}: GPU MISMATCH, comparing anyway because force is set; the errors mean nothing for either GPU"
