"""The worker's SIGTERM handling: it stops once and finishes its clean-up whatever arrives next."""

from __future__ import annotations

import os
import signal

import pytest
from lipsync_kit import worker


def test_a_second_sigterm_cannot_interrupt_the_cleanup_of_the_first() -> None:
    previous = signal.signal(signal.SIGTERM, worker._exit_on_sigterm)
    try:
        with pytest.raises(SystemExit) as stopped:
            os.kill(os.getpid(), signal.SIGTERM)
        assert stopped.value.code == 128 + signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGTERM)  # ignored: nothing is raised while cleaning up
    finally:
        signal.signal(signal.SIGTERM, previous)
