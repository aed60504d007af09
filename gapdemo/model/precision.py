"""Arithmetic precision of a run: float32, or mixed bfloat16 where the processor computes in bfloat16.

Mixed bfloat16 (keras.mixed_precision) keeps every variable in float32 and computes layers in
bfloat16; each back-end's sigmoid output stays float32 (gapdemo.model.backends), so losses and probabilities
keep their precision. It trained the lockstep model 1.21x faster on a processor with avx512_bf16
(benchmarks/RESULTS.md, section 3); without bfloat16 instructions it is emulated, and slower.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

PRECISIONS = ("float32", "mixed_bfloat16")  # TrainConfig.precision's choices
PRECISION_LABELS = {"float32": "float32", "mixed_bfloat16": "mixed bfloat16"}
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 processor flags of bfloat16 arithmetic


def processor_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The processor's feature flags (Linux), or an empty set where they cannot be read."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.split(":", 1)[0].strip() in ("flags", "Features"):
            return set(line.split(":", 1)[1].split())
    return set()


def bfloat16_support(flags: set[str] | None = None) -> tuple[bool, str]:
    """(whether this machine's processor computes in bfloat16, one sentence saying so)."""
    flags = processor_flags() if flags is None else flags
    found = [flag for flag in BFLOAT16_FLAGS if flag in flags]
    if found:
        return True, f"The processor training the models computes in bfloat16 ({', '.join(found)})."
    if not flags:  # macOS and Windows have no /proc/cpuinfo: unknown, which is not the same as absent
        return False, ("This system does not list its processor's features (gapdemo reads Linux's /proc/cpuinfo), "
                       "so mixed bfloat16 might run slower than float32 there; float32 is used.")
    return False, ("The processor training the models has no bfloat16 instructions "
                   f"({' or '.join(BFLOAT16_FLAGS)}), so mixed bfloat16 would run slower than float32 there; "
                   "float32 is used.")


def precision_problems(precision: str, flags: set[str] | None = None) -> list[str]:
    """One sentence per problem with a run's precision (empty when it can run here)."""
    if precision not in PRECISIONS:
        return [f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}."]
    if precision == "mixed_bfloat16":
        supported, sentence = bfloat16_support(flags)
        if not supported:
            return [sentence.replace("; float32 is used.", ": choose float32.")]
    return []


@contextlib.contextmanager
def dtype_policy(precision: str):
    """Keras layers built inside the block compute in precision; the policy before is restored after.

    Keras keeps its global dtype policy per thread, so a run in the job thread leaves the page's alone.
    """
    import keras  # deferred: the CLI's --help and the page's gate read this module; Keras takes seconds

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
