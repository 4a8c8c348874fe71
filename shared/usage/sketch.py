"""The counters and latency sketch of a usage row, as written by the aggregator and read by every reader.

Money and tokens are integers (nano-dollars), so sums are exact in any order; latency percentiles come
from a DDSketch, which merges across partitions and windows without keeping samples.
"""

from __future__ import annotations

from ddsketch import DDSketch
from ddsketch.pb.ddsketch_pb2 import DDSketch as SketchProto
from ddsketch.pb.proto import DDSketchProto

RELATIVE_ACCURACY = 0.01
COUNTERS = ("requests", "attempts", "errors", "cache_hits", "prompt_tokens", "completion_tokens",
            "cached_tokens", "cost_nanousd", "late_events")


def dump_sketch(sketch: DDSketch) -> bytes:
    data: bytes = DDSketchProto.to_proto(sketch).SerializeToString()  # type: ignore[no-untyped-call]
    return data


def load_sketch(data: bytes) -> DDSketch:
    proto = SketchProto()
    proto.ParseFromString(data)
    sketch: DDSketch = DDSketchProto.from_proto(proto)  # type: ignore[no-untyped-call]
    return sketch
