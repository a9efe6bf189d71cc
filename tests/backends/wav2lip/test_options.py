"""The worker reads its request against the backend's option declarations: defaults and checks."""

from __future__ import annotations

import pytest
from lipsync_kit.errors import BackendError
from lipsync_kit.protocol import ErrorCode
from lipsync_wav2lip.backend import RenderOptions
from lipsync_wav2lip.options import OPTIONS

_REQUEST = {"face": "/f.png", "audio": "/a.wav", "output": "/o.mp4", "weights": {"checkpoint": "/w.pth"}}


def test_unset_options_take_the_declared_defaults() -> None:
    opts = RenderOptions.from_params(_REQUEST)
    for option in OPTIONS:
        if option.target == "backend":
            expected = tuple(option.default) if isinstance(option.default, tuple) else option.default
            assert getattr(opts, option.name) == expected, option.name
    assert opts.pads == (0, 10, 0, 0) and opts.detector is None


@pytest.mark.parametrize(("name", "value"), [("paste", "hard"), ("resize_factor", 0), ("box", [5, 1, 0, 9])])
def test_a_bad_value_is_a_bad_option_naming_the_flag(name: str, value: object) -> None:
    with pytest.raises(BackendError) as info:
        RenderOptions.from_params({**_REQUEST, name: value})
    assert info.value.code == ErrorCode.BAD_OPTION
    assert info.value.message.startswith("--" + name.replace("_", "-"))
