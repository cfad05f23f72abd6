#!/usr/bin/env python3
"""Long-running fuzzer for the container and codec: damaged input must never give wrong bytes.

Usage: python scripts/fuzz.py [--seconds S] [--seed N]

Builds a small safetensors model with every coded dtype (and repeated chunks: a tied tensor,
zeros), a generic file and a fine-tune of the model (coded against the model: delta
chunks of 1, 2 and 4 bytes, chunks copied from the base), compresses each in 4 KiB chunks
with the default coder and with ``coder="huffman"`` and ``"qlc"`` (so HUFFMAN and QLC streams
are damaged too), and a model of long bf16 and fp16 tensors at both levels with the default
chunk sizes (32- and 64-state rANS streams, the chunks the one-call decoders take whole);
then applies random damage in a loop -- bit flips, byte overwrites, truncations, insertions
and deletions, a chunk record spliced in from the other container, two chunk records
swapped -- and decodes each result through the seekable reader (``decompress_file``), the
stream reader (``decompress_stream``) and ``verify_file``. The only outcomes allowed are the
exact original bytes or an ``AnszError``; anything else (wrong bytes, another exception) is a
violation, reported with the seed and iteration that reproduce it. The test suite runs this
for a few seconds; run it for hours before a release.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import traceback

import ml_dtypes
import numpy as np
from safetensors.numpy import save

import ansz
from ansz.container import ContainerFile
from ansz.errors import AnszError


def sample_files(rng: np.random.Generator) -> list[bytes]:
    """The originals: a model, a generic file, and a fine-tune of the model (coded against
    the model, its base: DELTA and COPY_BASE chunks)."""
    x = rng.standard_normal(20_000) * 0.02
    tensors = {
        "bf16": x.astype(ml_dtypes.bfloat16).reshape(100, 200),
        "f16": x[:3000].astype(np.float16),
        "f32": x[:2500].astype(np.float32),
        "f64": x[:700],
        "fp8": (x[:4000] * 2000).astype(ml_dtypes.float8_e4m3fn),
        "i64": np.arange(300, dtype=np.int64),
        "zeros": np.zeros(5000, ml_dtypes.bfloat16),
        "tied": x.astype(ml_dtypes.bfloat16).reshape(100, 200),  # a repeat of "bf16"
    }
    model = save(tensors, metadata={"note": "fuzz"})
    text = b"".join(b"line %d of a generic file\n" % i for i in range(800))
    tuned = dict(tensors)
    # changed a little (fp8 has 3 mantissa bits): DELTA chunks of 2, 4 and 1 bytes
    for name, scale in (("bf16", 2e-3), ("f32", 2e-3), ("fp8", 0.1)):
        t = tensors[name]
        noise = 1 + scale * rng.standard_normal(t.shape)
        tuned[name] = (t.astype(np.float64) * noise).astype(t.dtype)
    finetune = save(tuned, metadata={"note": "fuzz"})
    # chunks long enough for 32- and 64-state streams (RANS_WIDE), which the 4 KiB chunks
    # of the others never reach: coded at both levels with the default chunk sizes
    y = rng.standard_normal(300_000) * 0.02
    wide = save({"bf16": y.astype(ml_dtypes.bfloat16), "f16": y[:200_001].astype(np.float16)},
                metadata={"note": "fuzz"})
    return [model, text, finetune, wide]


#: The original coded against a base, and which original that base is.
BASED, BASE_OF = 2, 0
#: The original of long chunks, coded at each level (not with every coder: chunks this long
#: take rANS whatever "auto" tries).
WIDE = 3


CODERS = ("auto", "huffman", "qlc")


def compress(data: bytes, coder: str = "auto", base: str | None = None, *,
             chunk_size: int | None = 4096, level: int | None = None) -> bytes:
    """``data`` compressed as a file (so repeated chunks are stored once, as references),
    against the file ``base`` if given."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "x.safetensors"), os.path.join(tmp, "x.ansz")
        with open(src, "wb") as fh:
            fh.write(data)
        ansz.compress_file(src, dst, chunk_size=chunk_size, coder=coder, threads=1, base=base,
                           level=level)
        with open(dst, "rb") as fh:
            return fh.read()


def chunk_spans(blob: bytes) -> list[tuple[int, int]]:
    cf = ContainerFile(lambda off, n: blob[off:off + n], len(blob))
    return [(c.offset, c.offset + 48 + (-(-c.payload_length // 8) * 8)) for c in cf.index.chunks]


def mutate(rng: np.random.Generator, blob: bytes, other: bytes) -> bytes:
    b = bytearray(blob)
    kind = int(rng.integers(0, 7))
    if kind == 0:  # bit flips
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:  # random bytes
        i = int(rng.integers(0, len(b)))
        b[i:i + int(rng.integers(1, 16))] = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
    elif kind == 2:  # truncation
        del b[int(rng.integers(0, len(b))):]
    elif kind == 3:  # insertion
        i = int(rng.integers(0, len(b)))
        b[i:i] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    elif kind == 4:  # deletion
        i = int(rng.integers(0, len(b)))
        del b[i:i + int(rng.integers(1, 64))]
    elif kind == 5:  # splice a chunk record from the other container
        mine, theirs = chunk_spans(blob), chunk_spans(other)
        a = mine[int(rng.integers(0, len(mine)))]
        t = theirs[int(rng.integers(0, len(theirs)))]
        b[a[0]:a[1]] = other[t[0]:t[1]]
    else:  # swap two chunk records
        spans = chunk_spans(blob)
        if len(spans) >= 2:
            i, j = sorted(rng.choice(len(spans), 2, replace=False))
            (a0, a1), (c0, c1) = spans[i], spans[j]
            b = bytearray(blob[:a0] + blob[c0:c1] + blob[a1:c0] + blob[a0:a1] + blob[c1:])
    return bytes(b)


def outcomes(blob: bytes, original: bytes, tmp: str, base: str | None = None) -> list[str]:
    """'ok' (exact original), 'error' (AnszError), or a violation description, per reader;
    ``base``: the file the container was coded against (which a stream reader refuses)."""
    results = []
    path = os.path.join(tmp, "x.ansz")
    with open(path, "wb") as fh:
        fh.write(blob)
    out_path = os.path.join(tmp, "x.out")
    if os.path.exists(out_path):
        os.unlink(out_path)

    def check(name, fn):
        try:
            got = fn()
        except AnszError:
            results.append("error")
        except Exception:
            results.append(f"{name}: unexpected exception\n{traceback.format_exc()}")
        else:
            results.append("ok" if got == original else f"{name}: WRONG BYTES without an error")

    def from_file():
        ansz.decompress_file(path, out_path, overwrite=True, threads=2, base=base)
        with open(out_path, "rb") as fh:
            return fh.read()

    def from_stream():
        out = io.BytesIO()
        ansz.decompress_stream(io.BytesIO(blob), out, threads=2)
        return out.getvalue()

    check("decompress_file", from_file)
    check("decompress_stream", from_stream)
    try:
        ok = ansz.verify_file(path, base=base).ok
        results.append("ok" if ok else "error")
    except AnszError:
        results.append("error")
    except Exception:
        results.append(f"verify_file: unexpected exception\n{traceback.format_exc()}")
    # verify must agree with the decoders: never OK for a file that does not decode (the
    # stream reader of a container coded against a base always refuses it).
    decoders = results[:1] if base is not None else results[:2]
    if results[-1] == "ok" and "error" in decoders:
        results.append("verify_file: OK for a container that does not decode")
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    originals = sample_files(rng)
    # (original, container) for every original and coder; a splice takes its chunk record
    # from a container of the other original.
    counts = {"ok": 0, "error": 0}
    violations = 0
    end = time.monotonic() + args.seconds
    it = 0
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "base.safetensors")
        with open(base, "wb") as fh:
            fh.write(originals[BASE_OF])
        blobs = [(k, compress(d, coder, base if k == BASED else None))
                 for coder in CODERS for k, d in enumerate(originals) if k != WIDE]
        blobs += [(WIDE, compress(originals[WIDE], chunk_size=None, level=level))
                  for level in (1, 2)]
        for k, blob in blobs:  # undamaged, each decodes (a stream reader refuses a based one)
            want = ["ok", "error", "ok"] if k == BASED else ["ok", "ok", "ok"]
            if outcomes(blob, originals[k], tmp, base if k == BASED else None) != want:
                print(f"VIOLATION (seed {args.seed}): an undamaged container of original {k} "
                      "does not decode")
                violations += 1
        while time.monotonic() < end:
            k, blob = blobs[it % len(blobs)]
            others = [b for j, b in blobs if j != k]
            bad = mutate(rng, blob, others[int(rng.integers(0, len(others)))])
            for r in outcomes(bad, originals[k], tmp, base if k == BASED else None):
                if r in counts:
                    counts[r] += 1
                else:
                    violations += 1
                    print(f"VIOLATION (seed {args.seed}, iteration {it}): {r}")
            it += 1
    print(f"seed {args.seed}: {it} damaged containers, {counts['ok']} exact round trips, "
          f"{counts['error']} clean errors, violations: {violations}")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
