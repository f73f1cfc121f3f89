"""I3D RGB + flow features from raw videos (``python -m wtal_data extract``).

:mod:`.i3d` is the network, :mod:`.flow` the TV-L1 optical flow, :mod:`.extract` the driver
(decoding, 25 fps sampling, snippets, batching, resumable per-video output).
"""

from .extract import ExtractionError, ExtractionSettings, extract_videos, find_videos
from .i3d import InceptionI3d, load_i3d

__all__ = ["ExtractionError", "ExtractionSettings", "InceptionI3d", "extract_videos", "find_videos", "load_i3d"]
