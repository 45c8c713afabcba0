"""Data layer: synthetic datasets, readers of the official layouts, the common per-video format."""

from xinc.data.common import DataLayoutError, VideoSource
from xinc.data.prepare import (
    DATASETS,
    annotated_frames,
    describe_video,
    first_annotated_frame,
    list_videos,
    prepare_video,
    video_source,
)
from xinc.data.resize import working_resolution
from xinc.data.synth import SCALES, SYNTH_VIDEOS, generate

__all__ = ["DATASETS", "SCALES", "SYNTH_VIDEOS", "DataLayoutError", "VideoSource",
           "annotated_frames", "describe_video", "first_annotated_frame", "generate",
           "list_videos", "prepare_video", "video_source", "working_resolution"]
