"""TV-L1 optical flow between consecutive frames, scaled for the I3D flow stream.

TV-L1 (Zach, Pock & Bischof 2007) with OpenCV's default parameters is what the I3D flow
model was trained on and what the W-TALC features used; OpenCV's contrib build provides it
on the CPU (``cv2.optflow.DualTVL1OpticalFlow_create``, package
``opencv-contrib-python-headless``).  Flow is computed on grayscale frames, in pixels,
clipped to [-20, 20] and divided by 20, so the network sees [-1, 1] as in training.
"""

from __future__ import annotations

import numpy as np

FLOW_BOUND = 20.0  # pixels per frame; larger motions are clipped


def scale_flow(flow: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
    """Clip pixel displacements to [-bound, bound] and map them linearly to [-1, 1]."""
    return (np.clip(flow, -bound, bound) / bound).astype(np.float32)


class TVL1Flow:
    """Callable: (N, H, W, 3) uint8 RGB frames -> (N - 1, H, W, 2) float32 scaled (x, y) flow.

    Identical consecutive frames (a still video, or the repeated frames that pad the last
    snippet) get exactly zero flow without running the solver.
    """

    name = "tvl1"

    def __init__(self) -> None:
        import cv2

        if not hasattr(cv2, "optflow"):
            raise ImportError(
                "TV-L1 flow needs OpenCV's contrib modules: pip install opencv-contrib-python-headless "
                "(and no other opencv-python* package, which would shadow it)"
            )
        self._cv2 = cv2
        self._solver = cv2.optflow.DualTVL1OpticalFlow_create()

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        cv2 = self._cv2
        gray = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]
        height, width = gray[0].shape
        out = np.zeros((len(frames) - 1, height, width, 2), np.float32)
        for i in range(len(frames) - 1):
            if not np.array_equal(gray[i], gray[i + 1]):
                out[i] = self._solver.calc(gray[i], gray[i + 1], None)
        return scale_flow(out)
