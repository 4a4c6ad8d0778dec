"""N:M pruning kernels: one semantics (``reference``, plain numpy), a numba CPU implementation
(``cpu``), Triton GPU kernels and the cuSPARSELt operand layout (``gpu``), and eager torch
(``torch_eager``). Every implementation is tested against ``reference``. ``networks`` holds the
comparator network both selection kernels are generated from."""
