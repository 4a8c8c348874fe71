"""The numpy MiniLM encoder streamgate ran before onnxruntime (shared/embeddings), kept as the baseline
`bench semantic-cache` measures the shipped encoder against in the same run (float32, tanh GELU)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from shared.embeddings.minilm import DEFAULT_MODEL_DIR, MiniLM

_HEADS, _EPS, _MAX_TOKENS = 12, 1e-12, 256

Array = NDArray[np.float32]


def _layer_norm(x: Array, weight: Array, bias: Array) -> Array:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    out: Array = ((x - mean) / np.sqrt(var + _EPS) * weight + bias).astype(np.float32, copy=False)
    return out


def _gelu(x: Array) -> Array:
    # BERT's exact GELU, 0.5 x (1 + erf(x / sqrt 2)); erf via the vectorised math.erf is slow, so use
    # the standard tanh form, which matches to ~1e-3 and does not move cosine similarities measurably
    inner = np.float32(math.sqrt(2 / math.pi)) * (x + np.float32(0.044715) * x * x * x)
    out: Array = (np.float32(0.5) * x * (np.float32(1.0) + np.tanh(inner))).astype(np.float32, copy=False)
    return out


class NumpyMiniLM(MiniLM):
    def __init__(self, model_dir: Path = DEFAULT_MODEL_DIR) -> None:  # no super(): it opens no session
        weights_file, tokenizer_file = model_dir / "model.safetensors", model_dir / "tokenizer.json"
        w = load_file(str(weights_file))
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.enable_truncation(_MAX_TOKENS)
        self.tokenizer.no_padding()  # `embed` pads each group of similar lengths itself
        self.word, self.position = (
            w["embeddings.word_embeddings.weight"],
            w["embeddings.position_embeddings.weight"],
        )
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(6):
            p = f"encoder.layer.{i}."
            qkv_w = np.concatenate([w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")]).T
            qkv_b = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
            self.layers.append(
                (
                    np.ascontiguousarray(qkv_w),
                    qkv_b,
                    np.ascontiguousarray(w[p + "attention.output.dense.weight"].T),
                    w[p + "attention.output.dense.bias"],
                    w[p + "attention.output.LayerNorm.weight"],
                    w[p + "attention.output.LayerNorm.bias"],
                    np.ascontiguousarray(w[p + "intermediate.dense.weight"].T),
                    w[p + "intermediate.dense.bias"],
                    np.ascontiguousarray(w[p + "output.dense.weight"].T),
                    w[p + "output.dense.bias"],
                    w[p + "output.LayerNorm.weight"],
                    w[p + "output.LayerNorm.bias"],
                )
            )

    def encode_padded(self, ids: NDArray[np.int64], mask: NDArray[np.int64]) -> Array:
        """MiniLM.embed's length grouping, this forward pass."""
        return self._encode(ids, mask.astype(np.float32))

    def _encode(self, ids: NDArray[np.int64], mask: Array) -> Array:
        batch, length = ids.shape
        x = self.word[ids] + self.position[:length] + self.token_type
        x = _layer_norm(x, *self.emb_ln)
        bias = ((1.0 - mask) * -1e4)[:, None, None, :]
        head = 384 // _HEADS
        for qkv_w, qkv_b, o_w, o_b, ln1_w, ln1_b, i_w, i_b, out_w, out_b, ln2_w, ln2_b in self.layers:
            flat = x.reshape(batch * length, 384)  # 2-D matmuls go straight to BLAS gemm
            qkv = (flat @ qkv_w + qkv_b).reshape(batch, length, 3, _HEADS, head).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head) + bias
            # clipped so exp never yields subnormal floats, which are ~100x slower on x86
            scores = np.exp(np.maximum(scores - scores.max(-1, keepdims=True), -30.0))
            attn = scores / scores.sum(-1, keepdims=True)
            context = (attn @ v).transpose(0, 2, 1, 3).reshape(batch * length, 384)
            flat = _layer_norm(flat + context @ o_w + o_b, ln1_w, ln1_b)
            flat = _layer_norm(flat + _gelu(flat @ i_w + i_b) @ out_w + out_b, ln2_w, ln2_b)
            x = flat.reshape(batch, length, 384)
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        out: Array = (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)
        return out
