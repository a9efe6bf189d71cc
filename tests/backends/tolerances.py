"""One rule for every parity tolerance: a golden made on one CPU is matched on any x86-64 or arm64 CPU.

Every sum in a float32 computation (convolutions, matrix products, softmax normalisers, FFT bins, means)
may be added up in another order on another CPU (Intel or AMD, AVX2 or AVX-512, NEON, more threads), and
vectorised ``exp``/``log`` differ from scalar ones in the last bit. The results then end a few float32 steps
(units in the last place) away from the golden. An absolute tolerance close to the float32 spacing of the
values it guards passes on one machine and fails on another: ``degree_pitch`` 32.322617 against the golden
32.322601 is 4 steps of 3.8e-6, more than the old atol 1e-5 (issue 8).

The rule, from reference/sadtalker/README.md ("General rule"):

* ``atol`` is the reference README's value for that output (or, for our own goldens, a few times the float32
  vs float64 noise their script measured);
* every comparison adds ``rtol = 1e-6`` times the golden (about 8 float32 steps of each value), the README's
  term for values whose float32 spacing comes close to the atol;
* ``atol`` itself must cover at least MIN_STEPS float32 steps at the golden's largest magnitude, else the
  comparison is refused as CPU-dependent before it runs (`check_atol`). Where the README is silent, such a
  tolerance is written as a number of steps of that magnitude (`float32_steps`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

CROSS_CPU_RTOL = 1e-6  # reference/sadtalker/README.md, "General rule": atol + 1e-6 |golden|
# Float32 steps an atol must cover at the golden's largest magnitude: twice the 4 of issue 8. With the rtol
# term (1e-6 = 8.4 steps of 1.0) every comparison then allows at least 16 steps at the largest value.
MIN_STEPS = 8


def float32_spacing(values: ArrayLike) -> float:
    """The float32 spacing (one step) at the largest magnitude of ``values``."""
    largest = np.max(np.abs(np.asarray(values, dtype=np.float64)), initial=0.0)
    return float(np.spacing(np.float32(largest)))


def float32_steps(values: ArrayLike, steps: float) -> float:
    """An absolute tolerance of ``steps`` float32 steps at the largest magnitude of ``values``."""
    return steps * float32_spacing(values)


def check_atol(golden: ArrayLike, atol: float, name: str = "") -> None:
    """Refuse an ``atol`` below MIN_STEPS float32 steps of the golden's largest magnitude."""
    spacing = float32_spacing(golden)
    if atol < MIN_STEPS * spacing:
        largest = float(np.max(np.abs(np.asarray(golden, dtype=np.float64))))
        raise AssertionError(
            f"{name or 'tolerance'}: atol {atol:.3g} is {atol / spacing:.1f} float32 steps at |golden| ="
            f" {largest:.6g} (spacing {spacing:.3g}); another CPU's summation order can exceed that. Use at"
            f" least {MIN_STEPS} steps ({MIN_STEPS * spacing:.3g}) or the reference README's tolerance."
        )


def assert_parity(actual: ArrayLike, golden: ArrayLike, atol: float, name: str = "") -> None:
    """``actual`` matches ``golden`` within ``atol + CROSS_CPU_RTOL * |golden|``, shapes equal.

    The atol is checked first (`check_atol`), so a tolerance that only holds on some CPUs fails everywhere.
    """
    actual, golden = np.asarray(actual), np.asarray(golden)
    assert actual.shape == golden.shape, f"{name}: shape {actual.shape} != golden {golden.shape}"
    check_atol(golden, atol, name)
    np.testing.assert_allclose(actual, golden, rtol=CROSS_CPU_RTOL, atol=atol, err_msg=name)
