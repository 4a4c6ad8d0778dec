"""GPU kernels (Triton): N:M prune and 2:4 prune+compress into the cuSPARSELt operand layout,
int8 quantization, and the one-pass elementwise kernels (rotary, SiLU·up) the harness times."""
