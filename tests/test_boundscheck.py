"""Re-run the decoders with numba's bounds checking on, over valid and damaged input.

The kernels run without bounds checks in production and rely on validation done before
their loops. With NUMBA_BOUNDSCHECK=1 an out-of-range index raises IndexError instead of
reading garbage, so this proves the validation covers every access on this corpus: the only
outcomes allowed are an exact round trip or CorruptDataError. One subprocess serves every
decoder (rANS chunks here, the same chunks with HUFFMAN and QLC code streams, fielded
chunks of every field width, fast chunks with rANS pair streams, the damaged Huffman and
QLC streams of tests/helpers.py, HUFFMAN and QLC streams damaged in their tables, made-up
QLC streams, and QLC's optimal areas of random histograms), because each such run compiles
all kernels from scratch. With ANSZ_SLOW_TESTS every damage loop runs 100 times as long.
"""

import os
import subprocess
import sys

import pytest

PROBE = r"""
import sys
import numpy as np, ml_dtypes
from ansz import chunks, kernels, rans, streams
from ansz.errors import CorruptDataError
from tests.helpers import damage_outcomes, damaged_prefix_streams, symbols
assert not kernels.uses_library()  # the JIT kernels, which NUMBA_BOUNDSCHECK instruments
S = int(sys.argv[1])  # every damage loop runs S times its trials

rng = np.random.default_rng(1234)
cases = []
x = rng.standard_normal(3001) * 0.02
for name, dt in (("BF16", ml_dtypes.bfloat16), ("F16", np.float16), ("F32", np.float32),
                 ("F64", np.float64), ("F8_E4M3", ml_dtypes.float8_e4m3fn)):
    cases.append((name, x.astype(dt).tobytes()))
big = rng.standard_normal(30000) * 0.02 / 0.08 * 448
cases.append(("F8_E4M3", big.astype(ml_dtypes.float8_e4m3fn).tobytes()))  # a 14-bit table
cases.append(("BYTES", bytes(rng.integers(0, 4, 5000, dtype=np.uint8))))
cases.append(("I64", np.arange(700, dtype=np.int64).tobytes()))
def damage(name, data, blob, trials, fielded=False):
    assert chunks.decode_chunk(blob, name, len(data), fielded=fielded).tobytes() == data
    out = damage_outcomes(lambda b: chunks.decode_chunk(b, name, len(data), fielded=fielded),
                          blob, rng, S * trials)
    return out.total_ok, out.total_corrupt

ok = corrupt = 0
for name, data in cases:
    o, c = damage(name, data, chunks.encode_chunk(data, name), 150)
    ok, corrupt = ok + o, corrupt + c
# The same chunks with their code streams forced to HUFFMAN (4) and QLC (5) streams.
stream_ok = stream_corrupt = 0
for coder, method in (("huffman", 4), ("qlc", 5)):
    for name, data in cases[:1] + cases[4:6]:
        blob = chunks.encode_chunk(data, name, coder=coder)
        assert blob[4] == method, (coder, name, blob[4])
        o, c = damage(name, data, blob, 100)
        stream_ok, stream_corrupt = stream_ok + o, stream_corrupt + c
# Fielded chunks: every float dtype as chosen, and bf16 with zeros and infinities forced
# to each field width 8..12 (packed last planes of 8..4 bits, escapes).
from ansz import pairs
field_ok = field_corrupt = 0
for name, data in cases[:4]:
    o, c = damage(name, data, chunks.encode_chunk(data, name, fielded=True), 60, True)
    field_ok, field_corrupt = field_ok + o, field_corrupt + c
z = x.copy(); z[::50] = 0.0; z[:2] = [np.inf, 1e-40]
zb = z.astype(ml_dtypes.bfloat16).tobytes()
_, bases = kernels.field_costs(kernels.field_histogram(np.frombuffer(zb, np.uint16), np.uint32(3), np.int64(12), np.int64(1)))
for bits in range(8, 13):
    f = pairs.Field(15 - bits, bits, int(bases[bits - 8]))
    o, c = damage("BF16", zb, chunks.encode_chunk(zb, "BF16", fielded=True, field=f), 60, True)
    field_ok, field_corrupt = field_ok + o, field_corrupt + c
# Level-1 chunks as earlier versions wrote them: bf16 and f16 whose code streams are
# RANS_PAIRS (7), damaged anywhere.
from tests.golden.writer_patches import pair_stream, patched_writer
pair_ok = pair_corrupt = 0
wide = rng.standard_normal(9001) * 0.02
for name, dt in (("BF16", ml_dtypes.bfloat16), ("F16", np.float16)):
    data = (wide * (1 if name == "BF16" else 1e-3)).astype(dt).tobytes()
    with patched_writer(pair_streams=True):
        blob = chunks.encode_chunk(data, name, fielded=True, fast=True)
    assert blob[12] == 7, (name, blob[12])
    o, c = damage(name, data, blob, 100, True)
    pair_ok, pair_corrupt = pair_ok + o, pair_corrupt + c
# RANS_PAIRS streams themselves, 12- and 14-bit tables, damaged mostly in the table.
gain = streams.HIGH_SCALE_MIN_GAIN
for scale in (12, 14):
    streams.HIGH_SCALE_MIN_GAIN = gain if scale == 12 else -1.0  # -1: always 14 bits
    syms = ((wide[:5001].astype(ml_dtypes.bfloat16).view(np.uint16) >> 7) & 255).astype(np.uint8)
    blob = pair_stream(syms)
    assert blob[0] == 7 and blob[1] == scale, blob[:2]
    assert np.array_equal(streams.decode_stream(blob, syms.size), syms)
    for trial in range(S * 100):
        b = bytearray(blob)
        i = int(rng.integers(0, 400 if trial % 2 else len(b)))
        if trial % 3 == 0:
            b = b[:i]
        else:
            b[i] ^= 1 << int(rng.integers(0, 8))
        try:
            streams.decode_stream(bytes(b), syms.size - int(rng.integers(0, 2)))
            pair_ok += 1
        except CorruptDataError:
            pair_corrupt += 1
streams.HIGH_SCALE_MIN_GAIN = gain
# Random words against a valid table.
s = rng.integers(0, 5, 4000).astype(np.uint8)
freq = rans.normalize_counts(rans.byte_histogram(s))
for _ in range(S * 200):
    w = rng.integers(0, 65536, int(rng.integers(0, 5000)), dtype=np.uint16)
    try:
        rans.decode_symbols(w, s.size, freq)
    except CorruptDataError:
        corrupt += 1
prefix = sum(damaged_prefix_streams(coder, np.random.default_rng(8), S * 200).total_corrupt
             for coder in ("huffman", "qlc"))
# HUFFMAN and QLC streams damaged in their tables (method byte and table), straight through
# streams.decode_prefix_stream: huffman_read_table / qlc_read_table parse what is left.
from ansz import qlc
table_ok = table_corrupt = 0
for coder in streams.PREFIX_CODERS:
    for sym in (symbols(3, 12, 0.5, 768), symbols(4, 200, 0.02, 3000)):
        table = streams.prefix_table(np.bincount(sym, minlength=256), coder)
        blob = streams.encode_prefix_stream(sym, table)
        out = damage_outcomes(lambda b: streams.decode_prefix_stream(b, sym.size), blob, rng,
                              S * 100, span=(1, 1 + len(table.to_bytes())))
        table_ok, table_corrupt = table_ok + out.total_ok, table_corrupt + out.total_corrupt
# Made-up QLC streams: area bits 0..8 (or any nibble), m symbols (distinct or not), code
# bytes random or, every third trial with a valid table, coded symbols with a bit flipped
# one time in two; so partial and unused areas meet every bit pattern.
fuzz_ok = fuzz_corrupt = 0
for trial in range(S * 400):
    nib = rng.integers(0, 9 if trial % 4 else 16, 8)
    m = int(rng.integers(1, 257))
    syms = (rng.permutation(256)[:m] if trial % 2 else rng.integers(0, 256, m)).astype(np.uint8)
    count = int(rng.integers(0, 40))
    codes = rng.integers(0, 256, int(rng.integers(0, 40)), dtype=np.uint8).tobytes()
    if trial % 3 == 0:
        try:
            t = qlc.QlcTable(nib, syms)
            count = int(rng.integers(0, 400))
            codes = bytearray(qlc.encode(syms[rng.integers(0, m, count)], t)[0].tobytes())
            if codes and trial % 2:
                codes[int(rng.integers(0, len(codes)))] ^= 1 << int(rng.integers(0, 8))
            codes = bytes(codes)
        except ValueError:  # not a table an encoder can make
            pass
    blob = (bytes([5]) + bytes(int(nib[2 * k] | nib[2 * k + 1] << 4) for k in range(4))
            + bytes([m - 1]) + syms.tobytes() + codes)
    try:
        streams.decode_prefix_stream(blob, count)
        fuzz_ok += 1
    except CorruptDataError:
        fuzz_corrupt += 1
# Optimal areas of random histograms: 0 to 256 symbols, flat to very skewed, small to huge.
areas = 0
for trial in range(S * 300):
    counts = np.zeros(256, np.int64)
    k = int(rng.integers(0, 257))
    w = np.exp(-rng.uniform(0, 0.5) * np.arange(k)) * 10.0 ** rng.uniform(0, 12)
    counts[rng.permutation(256)[:k]] = np.maximum(1, w).astype(np.int64)
    bits, order = qlc.optimal_areas(counts)
    assert order.size == k and int((1 << bits.astype(np.int64)).sum()) >= k
    areas += 1
print("done", ok, corrupt, prefix, stream_ok, stream_corrupt, field_ok, field_corrupt,
      table_ok, table_corrupt, fuzz_ok, fuzz_corrupt, areas, pair_ok, pair_corrupt)
"""


@pytest.mark.parametrize("s", [1, pytest.param(100, marks=pytest.mark.slow)])
def test_decoders_stay_in_bounds_on_damaged_input(tmp_path, s):
    # ANSZ_NO_AOT: the ahead-of-time library's kernels are compiled without bounds checks.
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "numba"),
               ANSZ_NO_AOT="1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", PROBE, str(s)], env=env, capture_output=True,
                          text=True, timeout=600 * s, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("done"), proc.stdout
    (ok, corrupt, prefix_corrupt, stream_ok, stream_corrupt, field_ok, field_corrupt,
     table_ok, table_corrupt, fuzz_ok, fuzz_corrupt, areas, pair_ok,
     pair_corrupt) = map(int, proc.stdout.split()[1:])
    assert ok + corrupt == s * (8 * 150 + 200)  # every trial ended with one of the two outcomes
    # Damage inside stored raw planes is invisible here (the container's chunk hashes catch
    # it); damage to tables, lengths and rANS words mostly is not.
    assert corrupt >= s * 600
    assert prefix_corrupt >= s * 200  # Huffman and QLC: most of the damaged streams are caught
    # Chunks whose code stream is HUFFMAN or QLC, through chunks.decode_chunk.
    assert stream_ok + stream_corrupt == s * 2 * 3 * 100
    assert stream_corrupt >= s * 200  # every truncation, and damage to tables and lengths
    # Fielded chunks (headers, packed planes, escape streams), through chunks.decode_chunk.
    assert field_ok + field_corrupt == s * 9 * 60
    assert field_corrupt >= s * 180
    # HUFFMAN and QLC streams damaged in their tables, through decode_prefix_stream: every
    # cut inside the table is corrupt (a third of the trials), most other damage too.
    assert table_ok + table_corrupt == s * 2 * 2 * 100
    assert table_corrupt >= s * 300
    # Made-up QLC streams: both outcomes occur.
    assert fuzz_ok + fuzz_corrupt == s * 400 and fuzz_ok > 0 and fuzz_corrupt > 0
    # QLC's optimal areas: every histogram ran under bounds checking.
    assert areas == s * 300
    # Fast chunks (RANS_PAIRS code streams: pair tables, words, odd last symbols), and pair
    # streams with 12- and 14-bit tables damaged mostly in their tables.
    assert pair_ok + pair_corrupt == s * (2 * 100 + 2 * 100)
    assert pair_corrupt >= s * 150
