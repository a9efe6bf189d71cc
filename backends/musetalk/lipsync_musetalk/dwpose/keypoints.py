"""The COCO-WholeBody keypoint layout DWPose predicts: 133 points, their mirror pairs, the 68 face points.

Order (Jin et al., "Whole-Body Human Pose Estimation in the Wild", 2020): 17 body, 6 feet, 68 face in the
iBUG-68 order, 21 left-hand and 21 right-hand points. A horizontal flip swaps each left/right pair.
"""

from __future__ import annotations

from typing import Final

__all__ = ["FACE", "FLIP_INDICES", "NUM_KEYPOINTS"]

NUM_KEYPOINTS: Final = 133
FACE: Final = slice(23, 91)  # the 68 face landmarks

_MIRROR_PAIRS: Final = (
    *((i, i + 1) for i in range(1, 17, 2)),  # body: eyes, ears, shoulders, elbows, wrists, hips, knees…
    (17, 20), (18, 21), (19, 22),  # feet: big toe, small toe, heel
    *((23 + i, 39 - i) for i in range(8)),  # jaw line (31, the chin, is its own mirror)
    *((40 + i, 49 - i) for i in range(5)),  # eyebrows
    (54, 58), (55, 57),  # nostrils (50..53, the bridge, and 56 lie on the axis)
    (59, 68), (60, 67), (61, 66), (62, 65), (63, 70), (64, 69),  # eyes
    (71, 77), (72, 76), (73, 75), (78, 82), (79, 81),  # outer lip (74 and 80 on the axis)
    (83, 87), (84, 86), (88, 90),  # inner lip (85 and 89 on the axis)
    *((91 + i, 112 + i) for i in range(21)),  # left hand <-> right hand
)  # fmt: skip


def _flip_indices() -> tuple[int, ...]:
    index = list(range(NUM_KEYPOINTS))
    for left, right in _MIRROR_PAIRS:
        index[left], index[right] = right, left
    return tuple(index)


FLIP_INDICES: Final = _flip_indices()  # keypoint i of a flipped image is keypoint FLIP_INDICES[i] unflipped
