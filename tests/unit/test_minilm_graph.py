"""The ONNX encoder (shared/embeddings/graph.py) against a plain numpy BERT forward pass written from the
same weights: the graph is built op by op, so a wrong axis or a missed mask must show up here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from shared.embeddings.minilm import DEFAULT_MODEL_DIR, MiniLM
from shared.embeddings.pair_encoder import PairEncoder, merge_adapter

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL_DIR.exists(),
                                reason="model weights not installed (make setup)")

Array = np.ndarray


def _layer_norm(x: Array, weight: Array, bias: Array) -> Array:
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + 1e-12) * weight + bias


def _gelu(x: Array) -> Array:
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _reference(w: dict[str, Array], ids: list[int], types: list[int] | None = None) -> Array:
    """One text, no padding, float64: the encoder as the BERT paper writes it; with `types` (a pair),
    the pair head's score instead of the unit vector."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    n, heads, head = len(ids), 12, 32
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n] \
        + w["embeddings.token_type_embeddings.weight"][types or 0]
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    for i in range(6):
        p = f"encoder.layer.{i}."

        def dense(h: Array, name: str, p: str = p) -> Array:
            return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        q, k, v = (dense(x, f"attention.self.{m}").reshape(n, heads, head).transpose(1, 0, 2)
                   for m in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(head)
        attn = np.exp(scores - scores.max(-1, keepdims=True))
        attn /= attn.sum(-1, keepdims=True)
        context = (attn @ v).transpose(1, 0, 2).reshape(n, heads * head)
        x = _layer_norm(x + dense(context, "attention.output.dense"),
                        w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
        x = _layer_norm(x + dense(_gelu(dense(x, "intermediate.dense")), "output.dense"),
                        w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    pooled = x.mean(0)
    if types is not None:
        return pooled @ w["head.weight"] + w["head.bias"]
    return pooled / np.linalg.norm(pooled)


def test_the_onnx_encoder_matches_a_numpy_forward_pass_padded_or_not() -> None:
    model = MiniLM()
    weights = load_file(str(DEFAULT_MODEL_DIR / "model.safetensors"))
    texts = ["How do I reset my password in Kafka?", "How do I reset my password?", "hi",
             "Summarise the indemnification clause and the liability cap for the vendor, please. " * 4]
    got = model.embed(texts)  # one batch: the two questions share a group, the shorter one padded
    for text, vector in zip(texts, got, strict=True):
        expected = _reference(weights, model.tokenizer.encode(text).ids)
        assert np.abs(vector - expected).max() < 1e-4, text
        assert float(vector @ expected) > 0.99999
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_the_pair_graph_matches_a_numpy_forward_pass_in_both_orders(tmp_path: Path) -> None:
    """A random adapter (low-rank updates, new token types, a head) through the shipped path: merged,
    built as the pair graph, run by onnxruntime; against the float64 reference on the merged weights."""
    base = load_file(str(DEFAULT_MODEL_DIR / "model.safetensors"))
    rng = np.random.default_rng(7)
    adapter: dict[str, Array] = {"lora_scale": np.array(2.0, np.float32),
                                 "provenance": np.array(json.dumps({"min_probability": 0.9})),
                                 "head.weight": rng.normal(0, 0.2, 384).astype(np.float32),
                                 "head.bias": np.array(0.3, np.float32),
                                 "embeddings.token_type_embeddings.weight":
                                     rng.normal(0, 0.05, (2, 384)).astype(np.float32)}
    for i in range(6):
        name = f"encoder.layer.{i}.attention.self.query"
        adapter[f"{name}.lora_A"] = rng.normal(0, 0.05, (384, 4)).astype(np.float16)
        adapter[f"{name}.lora_B"] = rng.normal(0, 0.05, (4, 384)).astype(np.float16)
    np.savez(tmp_path / "adapter.npz", **adapter)
    model_dir = tmp_path / "model"  # its graph is built here, never taken from an earlier build
    model_dir.mkdir()
    for name in ("model.safetensors", "tokenizer.json"):
        (model_dir / name).symlink_to(DEFAULT_MODEL_DIR / name)
    encoder = PairEncoder(tmp_path / "adapter.npz", model_dir)
    merged = merge_adapter(base, {k: np.asarray(v) for k, v in adapter.items()})
    pairs = [("How do I reset my password in Kafka?", "What are the steps to reset a Kafka password?"),
             ("hi", "Summarise the liability cap for the vendor, please.")]
    got = encoder.logits(pairs)  # one batch of four sequences, the shorter ones padded
    for (a, b), score in zip(pairs, got, strict=True):
        expected = [_reference(merged, e.ids, e.type_ids) for e in (encoder.tokenizer.encode(a, b),
                                                                    encoder.tokenizer.encode(b, a))]
        assert abs(float(score) - float(np.mean(expected))) < 1e-3, (a, b)
    assert abs(float(got[0]) - float(encoder.logits([pairs[0][::-1]])[0])) < 1e-5  # symmetric
    assert len(list(model_dir.glob("pair-*.onnx"))) == 1


def test_the_int8_encoder_is_built_once_beside_the_weights_and_stays_close_to_float32(tmp_path: Path) -> None:
    """The cache's default encoder: int8 dense layers. Its vectors must stay near the float32 ones (the
    cache's decision is calibrated on those), keep the same nearest neighbour among clearly different
    texts, and its graph is quantized once per model directory, then read back."""
    import onnx

    model_dir = tmp_path / "model"  # built here, never taken from an earlier build
    model_dir.mkdir()
    for name in ("model.safetensors", "tokenizer.json"):
        (model_dir / name).symlink_to(DEFAULT_MODEL_DIR / name)
    texts = ["How do I reset my password in Kafka?", "What are the steps to reset a Kafka password?",
             "Which regions does the EU residency policy allow?", "hi",
             "Summarise the indemnification clause and the liability cap for the vendor, please. " * 4]
    exact, quantized = MiniLM(model_dir), MiniLM(model_dir, int8=True)
    assert (exact.variant, quantized.variant) == ("fp32", "int8")
    built = list(model_dir.glob("*.int8-v*.onnx"))
    assert len(built) == 1
    kinds = {n.op_type for n in onnx.load(str(built[0])).graph.node}
    assert "MatMulInteger" in kinds or "DynamicQuantizeMatMul" in kinds  # really quantized
    a, b = exact.embed(texts), quantized.embed(texts)
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert float((a * b).sum(1).min()) > 0.98
    assert not np.allclose(a, b, atol=1e-4)  # not the float32 graph under another name
    nearest = lambda v: (v @ v.T - 2 * np.eye(len(v))).argmax(1)  # noqa: E731
    assert list(nearest(a)) == list(nearest(b))
    mtime = built[0].stat().st_mtime_ns
    again = MiniLM(model_dir, int8=True)  # read back, not quantized again
    assert built[0].stat().st_mtime_ns == mtime
    assert np.allclose(again.embed(texts), b, atol=1e-6)
