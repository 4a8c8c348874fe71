"""int8 weights for the encoder's dense layers (onnxruntime dynamic quantization).

Why: the semantic cache embeds every new cache-eligible prompt on a core it shares with the event loop,
the broker and the other stages; the dense layers are most of that work, and with int8 weights (one
scale per output channel) and int8 activations they run ~2x faster on this machine's CPUs (AVX-512
VNNI). The vectors move a little (cosine to the float32 vector >= 0.988 on the project's paraphrase
texts); `bench semantic-cache` measures what that does to the cache's hits and precision, same run.
Only the dense MatMuls are quantized: the attention products and LayerNorms stay float32.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.embeddings.graph import kept_beside

#: bump when the quantization recipe changes, so a cached file from an older recipe is rebuilt
INT8_VERSION = 1


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime's quantizer logs advice on the root logger (pre-processing it does not need here)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize(graph: bytes) -> bytes:
    """The float32 encoder graph with int8 dense layers (names ending `.mm`, shared/embeddings/graph.py)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dense = [n.name for n in onnx.load_from_string(graph).graph.node
             if n.op_type == "MatMul" and n.name.endswith(".mm")]
    with tempfile.TemporaryDirectory(prefix="streamgate-int8-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(graph)
        with _quiet_root_logger():
            quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True,
                             nodes_to_quantize=dense)
        return target.read_bytes()


def cached_int8_graph(model_dir: Path, name: str, graph: Callable[[], bytes]) -> bytes:
    """The quantized graph, built once per model directory (~1 s) and kept beside the float32 one as
    `<name>.int8-vN.onnx`."""
    return kept_beside(model_dir / f"{name}.int8-v{INT8_VERSION}.onnx", lambda: quantize(graph()))
