"""The worker reads its request against the backend's option declarations: defaults and checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from lipsync_kit.errors import BackendError
from lipsync_kit.protocol import ErrorCode
from lipsync_sadtalker.backend import RenderOptions
from lipsync_sadtalker.options import OPTIONS

_WEIGHTS = {"bundle": "/b", "mapping": "/m", "detector": "/d", "landmarks": "/l"}
_REQUEST = {"face": "/f.png", "audio": "/a.wav", "output": "/o.mp4", "weights": _WEIGHTS}


def test_unset_options_take_the_declared_defaults() -> None:
    opts = RenderOptions.from_params(_REQUEST)
    for option in OPTIONS:
        if option.target == "backend" and option.name != "enhancer":
            assert getattr(opts, option.name) == option.default, option.name
    assert opts.enhancer is None and not opts.still


def test_lists_and_files_arrive_typed() -> None:
    opts = RenderOptions.from_params({**_REQUEST, "input_yaw": [0, 20], "ref_pose": "/r.mp4", "still": True})
    assert opts.input_yaw == (0.0, 20.0) and opts.ref_pose == Path("/r.mp4") and opts.still


@pytest.mark.parametrize(("name", "value"), [("pose_style", 46), ("size", 384), ("preprocess", "square")])
def test_a_bad_value_is_a_bad_option_naming_the_flag(name: str, value: object) -> None:
    with pytest.raises(BackendError) as info:
        RenderOptions.from_params({**_REQUEST, name: value})
    assert info.value.code == ErrorCode.BAD_OPTION
    assert info.value.message.startswith("--" + name.replace("_", "-"))
