"""all-MiniLM-L6-v2 as an ONNX graph, built here from the model's own safetensors weights.

Why build it: no package registry this project reaches ships the model's ONNX export from its authors,
and exporting needs torch. The graph is the BERT encoder written out op by op (the same arithmetic as
sentence-transformers: exact erf GELU, masked softmax attention, mean pooling, L2 normalisation), so
the weights whose provenance docs/semantic-cache.md checks are the only input. onnxruntime then runs it
with fused kernels and without holding the GIL, which the numpy encoder it replaces could not do: its
elementwise steps held the GIL and, on two cores, its ~30 ms per text held up the requests waiting for
their cache lookup (issue 16).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

HIDDEN, HEADS, LAYERS = 384, 12, 6
_EPS = 1e-12
#: bump when the graph's arithmetic changes, so a cached file from an older build is rebuilt
GRAPH_VERSION = 1


class _Graph:
    """Nodes and initializers of the graph being built; each helper returns its output's name."""

    def __init__(self, weights: dict[str, NDArray[np.float32]]) -> None:
        from onnx import NodeProto, TensorProto

        self.weights = weights
        self.nodes: list[NodeProto] = []
        self.inits: list[TensorProto] = []

    def const(self, name: str, value: NDArray[np.generic]) -> str:
        from onnx import numpy_helper

        # np.require, not np.ascontiguousarray: that turns a 0-d index into shape (1,), keeping the axis
        self.inits.append(numpy_helper.from_array(np.require(value, requirements="C"), name))
        return name

    def op(self, kind: str, inputs: list[str], name: str, **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(kind, inputs, [name], name=name, **attrs))
        return name

    def w(self, key: str) -> str:
        return self.const(key, self.weights[key].astype(np.float32))

    def ints(self, name: str, *values: int) -> str:
        return self.const(name, np.array(list(values), np.int64))

    def scalar(self, name: str, value: float) -> str:
        return self.const(name, np.array(value, np.float32))

    def dense(self, x: str, prefix: str, out: str) -> str:
        kernel = self.const(f"{prefix}.weight.T", self.weights[f"{prefix}.weight"].T.astype(np.float32))
        return self.op("Add", [self.op("MatMul", [x, kernel], f"{out}.mm"), self.w(f"{prefix}.bias")], out)

    def layer_norm(self, x: str, prefix: str, out: str) -> str:
        return self.op("LayerNormalization", [x, self.w(f"{prefix}.weight"), self.w(f"{prefix}.bias")], out,
                       axis=-1, epsilon=_EPS)


def _embeddings(g: _Graph, pair: bool) -> str:
    """Word + position + token type (0 for a single text; the input `token_type_ids` for a pair), then
    LayerNorm."""
    shape = g.op("Shape", ["input_ids"], "ids.shape")
    tokens = g.op("Gather", [shape, g.const("axis1", np.array(1, np.int64))], "tokens")
    tokens = g.op("Unsqueeze", [tokens, g.ints("axes0", 0)], "tokens.1d")
    positions = g.op("Slice", [g.w("embeddings.position_embeddings.weight"), g.ints("zero1", 0), tokens],
                     "positions")
    words = g.op("Gather", [g.w("embeddings.word_embeddings.weight"), "input_ids"], "words")
    if pair:
        types = g.op("Gather", [g.w("embeddings.token_type_embeddings.weight"), "token_type_ids"], "types")
    else:
        types = g.const("token_type0",
                        g.weights["embeddings.token_type_embeddings.weight"][0].astype(np.float32))
    summed = g.op("Add", [g.op("Add", [words, positions], "emb.sum"), types], "emb")
    return g.layer_norm(summed, "embeddings.LayerNorm", "emb.ln")


def _attention_bias(g: _Graph, mask: str) -> str:
    """Additive attention mask: 0 where a token is, -1e4 on padding, shaped [batch, 1, 1, tokens]."""
    padding = g.op("Sub", [g.scalar("one", 1.0), mask], "mask.inv")
    bias = g.op("Mul", [padding, g.scalar("neg", -1e4)], "mask.bias")
    return g.op("Unsqueeze", [bias, g.ints("axes12", 1, 2)], "mask.bias4")


def _self_attention(g: _Graph, x: str, bias: str, p: str) -> str:
    head = HIDDEN // HEADS
    qkv_w = np.concatenate([g.weights[f"{p}attention.self.{n}.weight"] for n in ("query", "key", "value")]).T
    qkv_b = np.concatenate([g.weights[f"{p}attention.self.{n}.bias"] for n in ("query", "key", "value")])
    qkv = g.op("MatMul", [x, g.const(f"{p}qkv.w", qkv_w.astype(np.float32))], f"{p}qkv.mm")
    qkv = g.op("Add", [qkv, g.const(f"{p}qkv.b", qkv_b.astype(np.float32))], f"{p}qkv")
    qkv = g.op("Reshape", [qkv, g.ints(f"{p}qkv.shape", 0, 0, 3, HEADS, head)], f"{p}qkv.split")
    qkv = g.op("Transpose", [qkv], f"{p}qkv.heads", perm=[2, 0, 3, 1, 4])  # [3, batch, heads, tokens, head]
    q, k, v = (g.op("Gather", [qkv, g.const(f"{p}idx{j}", np.array(j, np.int64))], f"{p}{n}", axis=0)
               for j, n in enumerate("qkv"))
    scores = g.op("MatMul", [q, g.op("Transpose", [k], f"{p}k.T", perm=[0, 1, 3, 2])], f"{p}scores")
    scores = g.op("Mul", [scores, g.scalar(f"{p}scale", 1.0 / math.sqrt(head))], f"{p}scores.scaled")
    attn = g.op("Softmax", [g.op("Add", [scores, bias], f"{p}scores.masked")], f"{p}attn", axis=-1)
    context = g.op("Transpose", [g.op("MatMul", [attn, v], f"{p}ctx")], f"{p}ctx.t", perm=[0, 2, 1, 3])
    return g.op("Reshape", [context, g.ints(f"{p}ctx.shape", 0, 0, HIDDEN)], f"{p}ctx.merged")


def _gelu(g: _Graph, x: str, p: str) -> str:
    """Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), as BERT computes it."""
    scaled = g.op("Div", [x, g.scalar(f"{p}sqrt2", math.sqrt(2.0))], f"{p}gelu.div")
    erf = g.op("Erf", [scaled], f"{p}gelu.erf")
    one_plus = g.op("Add", [g.scalar(f"{p}one", 1.0), erf], f"{p}gelu.1p")
    return g.op("Mul", [g.op("Mul", [x, g.scalar(f"{p}half", 0.5)], f"{p}gelu.half"), one_plus], f"{p}gelu")


def _layer(g: _Graph, x: str, bias: str, i: int) -> str:
    p = f"encoder.layer.{i}."
    attended = g.dense(_self_attention(g, x, bias, p), p + "attention.output.dense", f"{p}attn.out")
    x = g.layer_norm(g.op("Add", [x, attended], f"{p}attn.res"), p + "attention.output.LayerNorm", f"{p}ln1")
    hidden = _gelu(g, g.dense(x, p + "intermediate.dense", f"{p}inter"), p)
    out = g.dense(hidden, p + "output.dense", f"{p}ffn.out")
    return g.layer_norm(g.op("Add", [x, out], f"{p}ffn.res"), p + "output.LayerNorm", f"{p}ln2")


def _mean_pool(g: _Graph, x: str, mask: str) -> str:
    """Mean over real tokens."""
    mask3 = g.op("Unsqueeze", [mask, g.ints("axes2", 2)], "mask3")
    tokens_axis = g.ints("axes_tok", 1)
    summed = g.op("ReduceSum", [g.op("Mul", [x, mask3], "masked"), tokens_axis], "summed", keepdims=0)
    count = g.op("ReduceSum", [mask3, tokens_axis], "count", keepdims=0)
    count = g.op("Max", [count, g.scalar("tiny", 1e-9)], "count.safe")
    return g.op("Div", [summed, count], "pooled")


def _unit(g: _Graph, pooled: str) -> str:
    """Unit length: the output `embedding`."""
    squares = g.op("Mul", [pooled, pooled], "sq")
    squares = g.op("ReduceSum", [squares, g.ints("axes_h", 1)], "sumsq", keepdims=1)
    return g.op("Div", [pooled, g.op("Sqrt", [squares], "norm")], "embedding")


def _logit(g: _Graph, pooled: str) -> str:
    """The pair head: one score per pair, the output `logit`."""
    head = g.const("head.weight", g.weights["head.weight"].astype(np.float32).reshape(HIDDEN, 1))
    scored = g.op("Add", [g.op("MatMul", [pooled, head], "head.mm"), g.w("head.bias")], "head.out")
    return g.op("Reshape", [scored, g.ints("batch_only", -1)], "logit")


def build(weights: dict[str, NDArray[np.float32]], pair: bool = False) -> bytes:
    """The serialized ONNX model: inputs `input_ids`, `attention_mask` (int64, [batch, tokens]); output
    `embedding` (float32, [batch, 384], unit length).

    `pair`: the cross-encoder instead (shared/embeddings/pair_encoder.py): a third input
    `token_type_ids` (0 on the first text, 1 on the second) and the output `logit` (float32, [batch]),
    from the mean-pooled tokens through `head.weight` / `head.bias`."""
    import onnx
    from onnx import TensorProto, helper

    g = _Graph(weights)
    mask = g.op("Cast", ["attention_mask"], "mask.f", to=TensorProto.FLOAT)
    bias = _attention_bias(g, mask)
    x = _embeddings(g, pair)
    for i in range(LAYERS):
        x = _layer(g, x, bias, i)
    pooled = _mean_pool(g, x, mask)
    inputs = ["input_ids", "attention_mask", *(["token_type_ids"] if pair else [])]
    if pair:
        _logit(g, pooled)
        output = helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["batch"])
    else:
        _unit(g, pooled)
        output = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", HIDDEN])
    graph = helper.make_graph(
        g.nodes, "all-MiniLM-L6-v2" + ("-pair" if pair else ""),
        [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"]) for name in inputs],
        [output], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="streamgate", producer_version=str(GRAPH_VERSION))
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def cached_graph(model_dir: Path, weights: Callable[[], dict[str, NDArray[np.float32]]], *,
                 name: str = "model", pair: bool = False) -> bytes:
    """The graph, built once per model directory (~2 s) and kept beside the weights
    (`<name>.streamgate-vN.onnx`); `weights` is only loaded when it must be built. A pair model's
    `name` carries its adapter's digest, so a refitted adapter gets a graph of its own."""
    return kept_beside(model_dir / f"{name}.streamgate-v{GRAPH_VERSION}.onnx",
                       lambda: build(weights(), pair=pair))


def kept_beside(path: Path, make: Callable[[], bytes]) -> bytes:
    """`path`'s bytes, made by `make` and written there the first time; a read-only model directory
    makes them in memory at each start instead."""
    if path.exists():
        return path.read_bytes()
    data = make()
    try:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # atomic: a concurrent builder writes the same bytes
    except OSError:
        pass
    return data
