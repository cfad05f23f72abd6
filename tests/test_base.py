"""Compressing against a base file (``compress_file(..., base=)``, ``ansz compress --base``):
delta chunks, copies of the base, repeated chunks, and every way the base can be missing or
wrong.

The files are small synthetic "fine-tunes": each float value of the base moved by a
relative change of ~1e-3 (many bf16/fp8 values round back to the base's), as training does;
integer and boolean tensors are copied or changed wholesale.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import ansz
from ansz import api, container
from ansz.container import COPY_BASE, COPY_CHUNK, DELTA, PLAIN, ContainerFile
from ansz.delta import decode_delta, encode_delta
from ansz.dtypes import DTYPE_CODES
from ansz.errors import AnszError, BaseMismatchError, CorruptDataError, UnsupportedError

from helpers import invoke, leftovers, safetensors_dtypes, with_index

DTYPES = safetensors_dtypes()
FLOATS = ("BF16", "F16", "F32", "F8_E4M3", "F8_E5M2")
CHUNK = 1 << 16


def _pair(dtype: str, n: int = 120_000, seed: int = 0) -> tuple[dict, dict]:
    """(base tensors, fine-tuned tensors) of one dtype, plus an int64 tensor kept as is."""
    rng = np.random.default_rng(seed)
    t = DTYPES[dtype]
    if dtype in FLOATS or dtype == "F64":
        w = rng.standard_normal(n) * 0.05
        before = w.astype(t)
        after = (w * (1 + 1e-3 * rng.standard_normal(n))).astype(t)
    elif t is np.bool_:
        before = rng.random(n) < 0.1
        after = before.copy()
        after[rng.integers(0, n, n // 50)] ^= True
    else:
        info = np.iinfo(t)
        before = rng.integers(max(info.min, -100), min(info.max, 100), n).astype(t)
        after = before.copy()
        after[::7] += 1
    ids = np.arange(512, dtype=np.int64)
    return ({"w": before.reshape(-1, 40), "ids": ids},
            {"w": after.reshape(-1, 40), "ids": ids})


def _write(path: Path, tensors: dict) -> Path:
    save_file(tensors, str(path), metadata={"note": "test"})
    return path


def _kinds(path: Path) -> dict[str, list[int]]:
    """Chunk kinds of a container, per segment name ("" for unnamed segments)."""
    with open(path, "rb") as fh:
        blob = fh.read()
    cf = ContainerFile(lambda off, n: blob[off:off + n], len(blob))
    out: dict[str, list[int]] = {}
    for i in range(len(cf.index.chunks)):
        rec, _ = cf.chunk(i)
        name = cf.index.segments[cf.segment_of[i]].name or ""
        out.setdefault(name, []).append(rec.kind)
    return out


@pytest.mark.parametrize("dtype", [*FLOATS, "F64", "I32", "I64", "U8", "BOOL"])
def test_round_trip_against_a_base_for_every_dtype(tmp_path, dtype):
    before, after = _pair(dtype)
    base = _write(tmp_path / "base.safetensors", before)
    src = _write(tmp_path / "ft.safetensors", after)
    alone = api.compress_file(src, tmp_path / "alone.ansz", chunk_size=CHUNK)
    r = api.compress_file(src, tmp_path / "ft.ansz", chunk_size=CHUNK, base=base)
    api.decompress_file(tmp_path / "ft.ansz", tmp_path / "out", base=base)
    assert (tmp_path / "out").read_bytes() == src.read_bytes()
    assert api.verify_file(tmp_path / "ft.ansz", src, base=base).ok
    kinds = _kinds(tmp_path / "ft.ansz")
    assert kinds["ids"] == [COPY_BASE]  # identical tensors are copies of the base
    if dtype in FLOATS:
        assert DELTA in kinds["w"]
        assert r.compressed_size < 0.8 * alone.compressed_size, (r.ratio, alone.ratio)
    else:  # no delta coding: each chunk alone, unless it equals the base's
        assert set(kinds["w"]) <= {PLAIN, COPY_BASE}
        assert r.compressed_size <= alone.compressed_size


@pytest.mark.parametrize("width", [1, 2, 4])
def test_delta_payload_round_trips_any_bit_patterns(width):
    """NaNs, infinities, -0, the extremes and random patterns: the transform is a bijection."""
    code = {1: 4, 2: 12, 4: 13}[width]  # F8_E4M3, BF16 (fielded), F32 (fielded)
    assert DTYPE_CODES[code].width == width
    bits = 8 * width
    special = [0, 1, (1 << (bits - 1)) - 1, 1 << (bits - 1), (1 << (bits - 1)) + 1,
               (1 << bits) - 1, (1 << bits) - 2]
    u = np.array(special, np.uint64)
    pairs_a, pairs_b = np.meshgrid(u, u)
    rng = np.random.default_rng(width)
    rand = rng.integers(0, 1 << bits, 20_000, dtype=np.uint64)
    near = (rand.astype(np.int64) + rng.integers(-5, 6, rand.size)) % (1 << bits)
    t = {1: np.uint8, 2: np.uint16, 4: np.uint32}[width]
    target = np.concatenate([pairs_a.ravel(), rand, near.astype(np.uint64)]).astype(t)
    base = np.concatenate([pairs_b.ravel(), near.astype(np.uint64), rand]).astype(t)
    payload = encode_delta(target.view(np.uint8), base.view(np.uint8), code)
    out = np.empty(target.nbytes, np.uint8)
    decode_delta(payload, base.view(np.uint8), code, out)
    assert out.tobytes() == target.tobytes()
    # an unaligned output buffer decodes the same
    shifted = np.empty(target.nbytes + 1, np.uint8)[1:]
    decode_delta(payload, base.view(np.uint8), code, shifted)
    assert shifted.tobytes() == target.tobytes()


@pytest.mark.parametrize("width", [1, 2, 4])
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 16, 17, 24, 1016, 1023, 1024, 1025, 2055])
def test_delta_kernels_round_trip_at_lane_and_block_edges(width, n):
    """delta_decode rebuilds 8 or 16 elements at a time in blocks of 1024 and the rest one
    by one: counts around every edge, with unchanged, changed and wholly different elements
    (the most raw bits an element has) mixed, decode exactly."""
    from ansz import kernels

    t = {1: np.uint8, 2: np.uint16, 4: np.uint32}[width]
    rng = np.random.default_rng(n * 10 + width)
    base = rng.integers(0, 1 << (8 * width), n, dtype=np.uint64).astype(t)
    step = rng.integers(-300, 301, n) * (rng.random(n) < 0.6)
    target = ((base.astype(np.int64) + step) % (1 << (8 * width))).astype(t)
    wild = rng.random(n) < 0.2
    target[wild] = rng.integers(0, 1 << (8 * width), int(wild.sum()), dtype=np.uint64).astype(t)
    syms = np.empty(n, np.uint8)
    raw = np.zeros((n * (8 * width - 2) + 7) // 8 + 16, np.uint8)
    bits = int(kernels.delta_encode(target, base, syms, raw))
    words = np.zeros(bits // 64 + 2, np.uint64)
    words.view(np.uint8)[:(bits + 7) // 8] = raw[:(bits + 7) // 8]
    out = np.empty(n, t)
    assert kernels.delta_decode(base, syms, words, np.int64(bits), out) == kernels.DECODE_OK
    assert np.array_equal(out, target)


def test_delta_kernel_refuses_symbols_that_need_more_raw_bits_than_there_are():
    """Symbols that call for far more raw bits than the stream holds (the largest
    difference everywhere): every element's read stays inside raw (positions past it are
    clamped) and the answer is DECODE_TRUNCATED."""
    from ansz import kernels

    n = 4099
    base = np.zeros(n, np.uint32)
    syms = np.full(n, 2 * 32 + 1, np.uint8)  # |d| of 32 bits: 30 raw bits each
    words = np.zeros(3, np.uint64)  # room for 64 raw bits
    out = np.empty(n, np.uint32)
    assert kernels.delta_decode(base, syms, words, np.int64(64), out) == kernels.DECODE_TRUNCATED


def test_delta_kernel_refuses_a_raw_stream_past_its_gather_offsets():
    """The 16-element lanes gather at 31-bit byte offsets: a raw array of 2 GiB or more is
    refused before any is read (np.empty: its pages are never touched)."""
    from ansz import kernels

    base = np.zeros(16, np.uint16)
    out = np.empty(16, np.uint16)
    syms = np.zeros(16, np.uint8)
    words = np.empty(kernels.MAX_RAW_WORDS, np.uint64)
    words[:2] = 0  # the only words a stream of no raw bits reads (its padding check)
    assert kernels.delta_decode(base, syms, words, np.int64(0), out) == kernels.DECODE_BAD_SIZE
    assert kernels.delta_decode(base, syms, words[:-1], np.int64(0), out) == kernels.DECODE_OK


def test_damaged_delta_payload_is_an_error_not_a_crash():
    rng = np.random.default_rng(7)
    base = (rng.standard_normal(5000) * 0.05).astype(np.float32)
    target = (base * (1 + 1e-3 * rng.standard_normal(base.size))).astype(np.float32)
    payload = encode_delta(target.view(np.uint8), base.view(np.uint8), 13)
    out = np.empty(target.nbytes, np.uint8)
    with pytest.raises(CorruptDataError):
        decode_delta(payload[:-3], base.view(np.uint8), 13, out)
    with pytest.raises(CorruptDataError):
        decode_delta(payload + b"\0\0", base.view(np.uint8), 13, out)
    with pytest.raises(CorruptDataError):
        decode_delta(bytes([1]) + payload[1:], base.view(np.uint8), 13, out)
    wrong = 0
    for _ in range(200):  # flipped bits: an error, or bytes the content hash then refuses
        bad = bytearray(payload)
        bad[int(rng.integers(4, len(bad)))] ^= 1 << int(rng.integers(8))
        try:
            decode_delta(bytes(bad), base.view(np.uint8), 13, out)
        except CorruptDataError:
            continue
        wrong += out.tobytes() != target.tobytes()
    assert wrong < 200


def test_damaged_base_container_fails_verify_without_exceptions(tmp_path):
    before, after = _pair("BF16")
    base = _write(tmp_path / "base.safetensors", before)
    src = _write(tmp_path / "ft.safetensors", after)
    api.compress_file(src, tmp_path / "ft.ansz", chunk_size=CHUNK, base=base)
    blob = (tmp_path / "ft.ansz").read_bytes()
    cf = ContainerFile(lambda off, n: blob[off:off + n], len(blob))
    rng = np.random.default_rng(3)
    damaged = tmp_path / "bad.ansz"
    for entry in cf.index.chunks:
        if entry.payload_length == 0:
            continue
        bad = bytearray(blob)
        at = entry.offset + container.RECORD_HEADER.size + int(rng.integers(entry.payload_length))
        bad[at] ^= 0x10
        damaged.write_bytes(bytes(bad))
        report = api.verify_file(damaged, base=base)
        assert not report.ok and report.first_bad is not None


def test_missing_wrong_or_truncated_base_names_the_base_and_writes_nothing(tmp_path):
    before, after = _pair("BF16")
    base = _write(tmp_path / "base.safetensors", before)
    src = _write(tmp_path / "ft.safetensors", after)
    packed = tmp_path / "ft.ansz"
    api.compress_file(src, packed, chunk_size=CHUNK, base=base)
    sha = api.read_info(packed).base["sha256"]
    other = _write(tmp_path / "other.safetensors", _pair("BF16", seed=9)[0])
    same_size = tmp_path / "same-size.safetensors"
    data = bytearray(base.read_bytes())
    data[-1] ^= 1
    same_size.write_bytes(bytes(data))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(base.read_bytes()[:-100])
    out = tmp_path / "out"
    for wrong in (None, other, same_size, truncated, src):
        with pytest.raises(BaseMismatchError, match="base.safetensors") as e:
            api.decompress_file(packed, out, base=wrong)
        assert sha in str(e.value) and "\n" not in str(e.value)
        assert not out.exists()
        report = api.verify_file(packed, base=wrong)
        assert not report.ok and "base.safetensors" in report.message
        with pytest.raises(AnszError, match="base.safetensors"):
            with ansz.open(packed, base=wrong) as f:  # a base that differs late: at the tensor
                f.get_tensors()
    # a base of the right size that differs only at its end: found where it is used
    with pytest.raises(BaseMismatchError, match="tensor 'w' differ"):
        api.decompress_file(packed, out, base=same_size)
    assert leftovers(tmp_path) == []
    with pytest.raises(BaseMismatchError, match="decode it from a file"):  # a stream
        with open(packed, "rb") as fh:  # cannot reach the base: not "needs a newer ansz"
            api.decompress_stream(fh, open(os.devnull, "wb"))
    r = invoke(["decompress"], input=packed.read_bytes())
    assert r.exit_code == 1 and "newer" not in r.stderr and "--base BASE" in r.stderr
    with pytest.raises(AnszError, match="its own base"):
        api.compress_file(src, tmp_path / "self.ansz", base=src)
    plain = tmp_path / "plain.ansz"
    api.compress_file(src, plain)
    with pytest.raises(AnszError, match="not compressed against a base"):
        api.decompress_file(plain, out, base=base)


def test_renamed_reshaped_or_retyped_base_tensors_are_coded_alone(tmp_path):
    rng = np.random.default_rng(1)
    w = [(rng.standard_normal(40_000) * 0.05).astype(np.float32) for _ in range(5)]
    moved = [(x * (1 + 1e-3 * rng.standard_normal(x.size))).astype(np.float32) for x in w]
    base = _write(tmp_path / "base.safetensors", {
        "kept": w[0].reshape(-1, 100), "old_name": w[1].reshape(-1, 100),
        "reshaped": w[2].reshape(-1, 200), "retyped": w[3].astype(np.float16),
        "other": w[4].reshape(-1, 100)})
    src = _write(tmp_path / "ft.safetensors", {
        "kept": moved[0].reshape(-1, 100), "new_name": moved[1].reshape(-1, 100),
        "reshaped": moved[2].reshape(-1, 100), "retyped": moved[3].reshape(-1, 100),
        "other": moved[4].reshape(-1, 100)})
    packed = tmp_path / "ft.ansz"
    api.compress_file(src, packed, chunk_size=CHUNK, base=base)
    kinds = _kinds(packed)
    assert DELTA in kinds["kept"] and DELTA in kinds["other"]
    for name in ("new_name", "reshaped", "retyped"):
        assert set(kinds[name]) == {PLAIN}, name
    info = api.read_info(packed)
    spans = {s["name"]: s for s in info.segments}
    assert spans["kept"]["nbytes"] == w[0].nbytes
    api.decompress_file(packed, tmp_path / "out", base=base)
    assert (tmp_path / "out").read_bytes() == src.read_bytes()
    with ansz.open(packed, base=base) as f:  # single tensors, each with its base bytes
        assert np.array_equal(f.get_tensor("other"), moved[4].reshape(-1, 100))
        assert np.array_equal(f.get_tensor("new_name"), moved[1].reshape(-1, 100))
        sl = f.get_slice("kept")[3:7]
        assert np.array_equal(sl, moved[0].reshape(-1, 100)[3:7])


def test_a_container_of_the_base_serves_as_the_base(tmp_path):
    before, after = _pair("F32")
    base = _write(tmp_path / "base.safetensors", before)
    src = _write(tmp_path / "ft.safetensors", after)
    base_ansz = tmp_path / "base.safetensors.ansz"
    api.compress_file(base, base_ansz, chunk_size=CHUNK)
    a, b = tmp_path / "a.ansz", tmp_path / "b.ansz"
    api.compress_file(src, a, chunk_size=CHUNK, base=base)
    api.compress_file(src, b, chunk_size=CHUNK, base=base_ansz)
    assert a.read_bytes() == b.read_bytes()  # the same base, however it is stored
    for given in (base, base_ansz):
        out = tmp_path / "out"
        api.decompress_file(b, out, base=given, overwrite=True)
        assert out.read_bytes() == src.read_bytes()
    # a base compressed against a base is refused, not followed
    chained = tmp_path / "chained.ansz"
    with pytest.raises(AnszError, match="itself compressed against a base"):
        api.compress_file(src, chained, base=a)


def test_repeated_tensors_are_stored_once(tmp_path):
    rng = np.random.default_rng(5)
    emb = (rng.standard_normal(200_000) * 0.05).astype(np.float32).reshape(-1, 100)
    head = (rng.standard_normal(50_000) * 0.05).astype(np.float32).reshape(-1, 100)
    base = _write(tmp_path / "base.safetensors", {"head": head})
    tied = _write(tmp_path / "tied.safetensors", {"embed": emb, "head": head, "lm_head": emb})
    untied = _write(tmp_path / "untied.safetensors", {"embed": emb, "head": head})
    alone = api.compress_file(untied, tmp_path / "alone.ansz", chunk_size=CHUNK)
    r = api.compress_file(tied, tmp_path / "tied.ansz", chunk_size=CHUNK, base=base)
    kinds = _kinds(tmp_path / "tied.ansz")
    assert set(kinds["lm_head"]) == {COPY_CHUNK} and COPY_CHUNK not in kinds["embed"]
    assert set(kinds["head"]) == {COPY_BASE}
    # lm_head costs only its records; head, a copy of the base's, hardly more
    assert r.compressed_size < alone.compressed_size - 0.6 * head.nbytes
    api.decompress_file(tmp_path / "tied.ansz", tmp_path / "out", base=base)
    assert (tmp_path / "out").read_bytes() == tied.read_bytes()
    with ansz.open(tmp_path / "tied.ansz", base=base) as f:
        assert np.array_equal(f.get_tensor("lm_head"), emb)
    loaded = ansz.load_file(tmp_path / "tied.ansz", base=base)
    assert np.array_equal(loaded["lm_head"], emb) and np.array_equal(loaded["head"], head)


def test_readers_without_the_flag_call_the_file_unsupported(tmp_path, monkeypatch):
    before, after = _pair("BF16", n=4000)
    base = _write(tmp_path / "base.safetensors", before)
    src = _write(tmp_path / "ft.safetensors", after)
    packed = tmp_path / "ft.ansz"
    api.compress_file(src, packed, base=base)
    monkeypatch.setattr(container, "KNOWN_FLAGS", container.FLAG_WIDE_RANS)
    with pytest.raises(UnsupportedError, match="features"):
        api.read_info(packed)
    r = invoke(["decompress", "--base", base, packed, "-o", tmp_path / "out"])
    assert r.exit_code == 3 and not (tmp_path / "out").exists()


def test_cli_compress_decompress_verify_info_with_a_base(tmp_path):
    before, after = _pair("BF16")
    base = _write(tmp_path / "base.safetensors", before)
    src = _write(tmp_path / "ft.safetensors", after)
    r = invoke(["compress", "-q", "--base", base, src])
    assert r.exit_code == 0, r.stderr
    packed = tmp_path / "ft.safetensors.ansz"
    os.remove(src)
    r = invoke(["decompress", packed])
    assert r.exit_code == 1 and not src.exists()
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("ansz: ")]
    assert len(lines) == 1 and "base.safetensors" in lines[0] and "--base" in lines[0]
    r = invoke(["decompress", "-q", "--base", base, packed])
    assert r.exit_code == 0, r.stderr
    assert src.read_bytes() == _write(tmp_path / "again.safetensors", after).read_bytes()
    assert invoke(["verify", "--base", base, packed]).exit_code == 0
    assert invoke(["verify", packed]).exit_code == 1
    r = invoke(["info", "--json", packed])
    doc = json.loads(r.stdout)
    assert doc["base"]["name"] == "base.safetensors"
    assert doc["base"]["size"] == base.stat().st_size
    assert "base.safetensors" in invoke(["info", packed]).stdout
    r = invoke(["decompress", "-c", "--base", base, packed])
    assert r.exit_code == 2  # a usage error: --base needs files


def test_sharded_model_against_its_base_shards_with_r(tmp_path):
    """-r with a base directory: each shard against the base's shard holding the most of its
    tensors (here the fine-tune's shards hold them the other way round), decoded with the
    shard its container names."""
    rng = np.random.default_rng(2)
    base_dir, ft_dir = tmp_path / "base", tmp_path / "ft"
    base_dir.mkdir()
    ft_dir.mkdir()
    originals, base_of = {}, {}
    for k in (1, 2):
        name = f"model-0000{k}-of-00002.safetensors"
        other = f"model-0000{3 - k}-of-00002.safetensors"
        w = (rng.standard_normal(30_000) * 0.05).astype(DTYPES["BF16"]).reshape(-1, 100)
        moved = (w.astype(np.float32) * (1 + 1e-3 * rng.standard_normal(w.shape))).astype(
            DTYPES["BF16"])
        _write(base_dir / name, {f"layer{k}.w": w})
        originals[other] = _write(ft_dir / other, {f"layer{k}.w": moved}).read_bytes()
        base_of[other] = name
    (ft_dir / "config.json").write_text("{}")
    r = invoke(["compress", "-q", "-r", "--rm", "--base", base_dir, ft_dir])
    assert r.exit_code == 0, r.stderr
    for name in originals:
        assert not (ft_dir / name).exists()
        info = api.read_info(ft_dir / (name + ".ansz"))
        assert info.base["name"] == base_of[name] and info.ratio < 0.5
    assert invoke(["verify", "-r", "--base", base_dir, ft_dir]).exit_code == 0
    r = invoke(["decompress", "-q", "-r", "--base", base_dir, ft_dir])
    assert r.exit_code == 0, r.stderr
    for name, data in originals.items():
        assert (ft_dir / name).read_bytes() == data
    (tmp_path / "empty").mkdir()
    r = invoke(["decompress", "-f", "-q", "-r", "--base", tmp_path / "empty", ft_dir])
    assert r.exit_code == 1 and "has no model-00001-of-00002.safetensors" in r.stderr


def _resharded(tmp_path: Path) -> tuple[Path, Path, list[np.ndarray]]:
    """A base sharded in two (layer1, layer2) and its fine-tune in one file with both
    layers and a new tensor: ``(base directory, fine-tune, the base tensors)``."""
    rng = np.random.default_rng(4)
    base_dir = tmp_path / "base"
    base_dir.mkdir()
    ws, moved = [], {}
    for k in (1, 2):
        w = (rng.standard_normal(30_000) * 0.05).astype(DTYPES["BF16"]).reshape(-1, 100)
        ws.append(w)
        _write(base_dir / f"model-0000{k}-of-00002.safetensors", {f"layer{k}.w": w})
        moved[f"layer{k}.w"] = (w.astype(np.float32) * (1 + 1e-3 * rng.standard_normal(
            w.shape))).astype(DTYPES["BF16"])
    moved["new.w"] = (rng.standard_normal(5000) * 0.05).astype(DTYPES["BF16"])
    (base_dir / "config.json").write_text("{}")
    return base_dir, _write(tmp_path / "ft.safetensors", moved), ws


def test_a_base_of_several_files(tmp_path):
    """A fine-tune sharded otherwise than its base takes each tensor from the base file
    that has it; the container lists the files, and decoding needs their directory."""
    base_dir, src, ws = _resharded(tmp_path)
    dst = tmp_path / "ft.ansz"
    r = api.compress_file(src, dst, chunk_size=CHUNK, base=base_dir)
    info = api.read_info(dst)
    assert [p["name"] for p in info.base["parts"]] == [
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert info.base["size"] == sum(f.stat().st_size for f in base_dir.glob("*.safetensors"))
    assert info.base["name"] == "base"
    # both layers are coded against the base: far smaller than the file alone
    alone = api.compress_file(src, tmp_path / "alone.ansz", chunk_size=CHUNK)
    assert r.compressed_size < 0.6 * alone.compressed_size
    for threads in (1, 2):
        out = tmp_path / f"out{threads}"
        api.decompress_file(dst, out, base=base_dir, threads=threads)
        assert out.read_bytes() == src.read_bytes()
    assert api.verify_file(dst, src, base=base_dir).ok
    with ansz.open(dst, base=base_dir) as f:
        assert f.get_tensor("layer2.w").tobytes() == load_file(str(src))["layer2.w"].tobytes()
    stats = api.file_stats(src, base=base_dir)
    assert stats.compressed_bytes < 0.6 * alone.compressed_size
    # a container of a base file serves for it
    api.compress_file(base_dir / "model-00002-of-00002.safetensors",
                      base_dir / "model-00002-of-00002.safetensors.ansz")
    (base_dir / "model-00002-of-00002.safetensors").rename(tmp_path / "kept")
    api.decompress_file(dst, tmp_path / "out3", base=base_dir)
    assert (tmp_path / "out3").read_bytes() == src.read_bytes()
    # one file is not the base; a directory without one of the files, or with another
    # file under its name, is refused, naming what is needed, and nothing is written
    with pytest.raises(BaseMismatchError, match="several files.*model-00001"):
        api.decompress_file(dst, tmp_path / "x", base=base_dir / "model-00001-of-00002.safetensors")
    (base_dir / "model-00002-of-00002.safetensors.ansz").unlink()
    with pytest.raises(BaseMismatchError, match="has no model-00002-of-00002.safetensors"):
        api.decompress_file(dst, tmp_path / "x", base=base_dir)
    _write(base_dir / "model-00002-of-00002.safetensors", {"layer2.w": ws[0]})
    with pytest.raises(BaseMismatchError, match="not the base"):
        api.decompress_file(dst, tmp_path / "x", base=base_dir)
    assert not (tmp_path / "x").exists() and leftovers(tmp_path) == []


def test_a_base_of_several_files_through_the_command(tmp_path):
    base_dir, src, _ = _resharded(tmp_path)
    r = invoke(["compress", "-q", "--base", base_dir, src])
    assert r.exit_code == 0, r.stderr
    dst = tmp_path / "ft.safetensors.ansz"
    r = invoke(["info", dst])
    assert "2 files of base" in r.stdout and "model-00002-of-00002.safetensors (" in r.stdout
    parts = json.loads(invoke(["info", "--json", dst]).stdout)
    parts = parts[0]["base"]["parts"] if isinstance(parts, list) else parts["base"]["parts"]
    assert len(parts) == 2 and all(len(p["sha256"]) == 64 for p in parts)
    src.rename(tmp_path / "orig")
    r = invoke(["decompress", "-q", "--base", base_dir, dst])
    assert r.exit_code == 0, r.stderr
    assert src.read_bytes() == (tmp_path / "orig").read_bytes()
    r = invoke(["decompress", "-f", "-q", "--base", base_dir / "model-00001-of-00002.safetensors",
                dst, "-o", tmp_path / "y"])
    assert r.exit_code == 1 and "give that directory" in r.stderr


@pytest.mark.parametrize("mutate", [
    lambda o: o["base"]["parts"][1].update(size=o["base"]["parts"][1]["size"] + 1),
    lambda o: o["base"]["parts"][1].update(name="../x.safetensors"),
    lambda o: o["base"]["parts"][1].update(name=o["base"]["parts"][0]["name"]),
    lambda o: o["base"].update(parts=o["base"]["parts"][:1]),
    lambda o: _second_paired(o)["base"].update(start=_second_paired(o)["base"]["start"] - 1000,
                                               end=_second_paired(o)["base"]["end"] - 1000),
], ids=["sizes", "path", "same name", "one part", "range across files"])
def test_hostile_base_of_several_files_is_corrupt(tmp_path, mutate):
    """(The last case moves the second file's tensor 1000 bytes back: into the first file.)"""
    base_dir, src, _ = _resharded(tmp_path)
    dst = tmp_path / "ft.ansz"
    api.compress_file(src, dst, chunk_size=CHUNK, base=base_dir)
    blob = with_index(dst.read_bytes(), mutate)
    with pytest.raises(CorruptDataError):
        _decode(tmp_path, blob, base_dir)


def test_fast_level_and_thread_counts_against_a_base(tmp_path):
    """--fast codes against a base too; the container does not depend on the threads."""
    before, after = _pair("BF16")
    base = _write(tmp_path / "base.safetensors", before)
    src = _write(tmp_path / "ft.safetensors", after)
    for level in (1, 2):
        one, two = tmp_path / f"l{level}-t1.ansz", tmp_path / f"l{level}-t2.ansz"
        api.compress_file(src, one, chunk_size=CHUNK, level=level, threads=1, base=base)
        api.compress_file(src, two, chunk_size=CHUNK, level=level, threads=2, base=base)
        assert one.read_bytes() == two.read_bytes()
        assert DELTA in _kinds(one)["w"]
        api.decompress_file(two, tmp_path / "out", base=base, threads=2, overwrite=True)
        assert (tmp_path / "out").read_bytes() == src.read_bytes()


def test_stats_predicts_compressing_against_a_base(tmp_path):
    before, after = _pair("BF16")
    base = _write(tmp_path / "base.safetensors", before)
    src = _write(tmp_path / "ft.safetensors", after)
    alone = api.file_stats(src)
    against = api.file_stats(src, base=base)
    real = api.compress_file(src, tmp_path / "ft.ansz", base=base)
    assert against.base == "base.safetensors" and alone.base is None
    # exact but for the index's record of the base (name, sha256, each chunk's base hash)
    assert against.exact and abs(against.compressed_bytes - real.compressed_size) <= 256
    assert against.compressed_bytes < 0.6 * alone.compressed_bytes
    r = invoke(["stats", "--json", "--base", base, src])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["base"] == "base.safetensors"
    assert doc["compressed_bytes"] == against.compressed_bytes
    assert "against base.safetensors" in invoke(["stats", "--base", base, src]).stdout
    assert invoke(["stats", "--base", base, tmp_path / "ft.ansz"]).exit_code == 1


# --- hostile containers: every field checked, with valid checksums -------------------------


def _rewrite_record(blob: bytes, i: int, kind: int) -> bytes:
    """``blob`` with chunk ``i``'s Chunk_Kind set to ``kind``, its checksum redone."""
    import struct
    import zlib

    c = container
    cf = ContainerFile(lambda off, n: blob[off:off + n], len(blob))
    at = cf.index.chunks[i].offset
    head = bytearray(blob[at:at + c.RECORD_HEADER.size])
    head[2:4] = kind.to_bytes(2, "little")
    head[44:48] = struct.pack("<I", zlib.crc32(bytes(head[:44])))
    return blob[:at] + bytes(head) + blob[at + c.RECORD_HEADER.size:]


@pytest.fixture(scope="module")
def based(tmp_path_factory):
    """(base path, container bytes, plain container bytes, original bytes)."""
    tmp = tmp_path_factory.mktemp("hostile")
    before, after = _pair("BF16", n=20_000)
    base = _write(tmp / "base.safetensors", before)
    src = _write(tmp / "ft.safetensors", after)
    api.compress_file(src, tmp / "ft.ansz", chunk_size=1 << 14, base=base)
    api.compress_file(src, tmp / "plain.ansz", chunk_size=1 << 14)
    return base, (tmp / "ft.ansz").read_bytes(), (tmp / "plain.ansz").read_bytes(), \
        src.read_bytes()


def _decode(tmp_path, blob: bytes, base) -> bytes:
    path = tmp_path / "x.ansz"
    path.write_bytes(blob)
    api.decompress_file(path, tmp_path / "x.out", base=base, overwrite=True)
    return (tmp_path / "x.out").read_bytes()


def _paired(obj) -> dict:
    return next(s for s in obj["segments"] if s["base"] is not None)


def _second_paired(obj) -> dict:
    return [s for s in obj["segments"] if s["base"] is not None][1]


@pytest.mark.parametrize("mutate", [
    lambda o: o.pop("base"),
    lambda o: o["base"].update(xxh3="0" * 16),
    lambda o: o["base"].update(size=-1),
    lambda o: o["base"].update(sha256="A" * 64),
    lambda o: _paired(o).update(base=[0, 10]),
    lambda o: _paired(o)["base"].update(end=_paired(o)["base"]["end"] + 2),
    lambda o: _paired(o)["base"].update(start=10**15, end=10**15 + 1),
    lambda o: _paired(o)["base"]["xxh3"].pop(),
    lambda o: _paired(o)["base"]["xxh3"].__setitem__(0, "xyz"),
    lambda o: o["segments"][0].pop("base"),
], ids=["no base", "base xxh3", "base size", "base sha256", "range as list", "range length",
        "range past the base", "hash count", "hash text", "segment without base key"])
def test_hostile_base_index_is_corrupt(tmp_path, based, mutate):
    base, blob, _, _ = based
    with pytest.raises(CorruptDataError):
        _decode(tmp_path, with_index(blob, mutate), base)


def test_hostile_chunk_kinds(tmp_path, based):
    base, blob, plain, original = based
    assert _decode(tmp_path, blob, base) == original
    cf = ContainerFile(lambda off, n: blob[off:off + n], len(blob))
    kinds = [cf.chunk(i)[0].kind for i in range(len(cf.index.chunks))]
    delta = kinds.index(DELTA)
    unpaired = next(i for i in range(len(kinds))
                    if cf.index.segments[cf.segment_of[i]].base is None)
    cases = [(unpaired, COPY_BASE, "no base range"),  # the header: no base bytes to copy
             (delta, COPY_BASE, "has a payload"),
             (delta, COPY_CHUNK, "chunk reference"),
             (delta, PLAIN, None)]  # a delta payload read as a plain one: fails somewhere
    for i, kind, match in cases:
        with pytest.raises(CorruptDataError, match=match):
            _decode(tmp_path, _rewrite_record(blob, i, kind), base)
    with pytest.raises(UnsupportedError, match="reserved"):  # a kind no reader knows
        _decode(tmp_path, _rewrite_record(blob, delta, 4), base)
    with pytest.raises(UnsupportedError, match="reserved"):  # kinds need the header flag
        _decode(tmp_path, _rewrite_record(plain, 1, DELTA), None)
    # a base whose bytes differ where this chunk reads them: a wrong base, never wrong output
    bad_base = tmp_path / "bad-base.safetensors"
    data = bytearray(base.read_bytes())
    seg = cf.index.segments[cf.segment_of[delta]]
    data[seg.base[0] + cf.index.chunks[delta].original_offset - seg.start] ^= 1
    bad_base.write_bytes(bytes(data))
    with pytest.raises(BaseMismatchError, match="differ"):
        _decode(tmp_path, blob, bad_base)


def test_equal_hashes_of_different_bytes_are_not_taken_for_repeats(tmp_path, monkeypatch):
    """A repeat is stored once only if its bytes are equal, not just its xxh3: with every
    hash made equal, no chunk of ``b`` may become a reference to one of ``a``."""
    from ansz import base as base_module, chunks, repeats

    rng = np.random.default_rng(9)
    a = (rng.standard_normal(60_000) * 0.05).astype(np.float32)
    b = (rng.standard_normal(60_000) * 0.05).astype(np.float32)
    base = _write(tmp_path / "base.safetensors", {"a": a})
    src = _write(tmp_path / "m.safetensors", {"a": a, "b": b})
    for module in (chunks, base_module, container, repeats):
        monkeypatch.setattr(module, "content_hash", lambda data: 7)
    api.compress_file(src, tmp_path / "m.ansz", chunk_size=CHUNK, base=base)
    assert COPY_CHUNK not in _kinds(tmp_path / "m.ansz")["b"]
    api.decompress_file(tmp_path / "m.ansz", tmp_path / "out", base=base)
    assert (tmp_path / "out").read_bytes() == src.read_bytes()


def test_the_output_cannot_be_its_own_base(tmp_path):
    base_t, ft_t = _pair("BF16")
    src = _write(tmp_path / "ft.safetensors", ft_t)
    out = tmp_path / "ft.safetensors.ansz"
    api.compress_file(src, out)
    before = out.read_bytes()
    with pytest.raises(AnszError, match="is the output"):
        api.compress_file(src, out, base=out, overwrite=True)
    assert out.read_bytes() == before
    # --base DIR, the input's own directory: its own container is never the base chosen
    _write(tmp_path / "base.safetensors", base_t)
    r = invoke(["compress", "-f", "--base", tmp_path, src])
    assert r.exit_code == 0, r.stderr
    assert api.read_info(out).base["name"] == "base.safetensors"


def test_a_base_no_tensor_pairs_with_is_not_needed_to_decode(tmp_path):
    _, ft_t = _pair("F32")
    other = _write(tmp_path / "other.safetensors", {"unrelated": np.ones(5000, np.float32)})
    src = _write(tmp_path / "ft.safetensors", ft_t)
    api.compress_file(src, tmp_path / "ft.ansz", chunk_size=CHUNK, base=other)
    other.unlink()  # lost: the container never used it
    api.decompress_file(tmp_path / "ft.ansz", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == src.read_bytes()


def test_a_base_name_that_is_a_path_is_corrupt(tmp_path):
    base_t, ft_t = _pair("BF16")
    base = _write(tmp_path / "base.safetensors", base_t)
    src = _write(tmp_path / "ft.safetensors", ft_t)
    api.compress_file(src, tmp_path / "ft.ansz", base=base)
    blob = (tmp_path / "ft.ansz").read_bytes()
    for name in ("../base.safetensors", "/etc/passwd", ".."):
        def rename(obj, name=name):
            obj["base"]["name"] = name

        hostile = tmp_path / "hostile.ansz"
        hostile.write_bytes(with_index(blob, rename))
        with pytest.raises(CorruptDataError, match="not a file name"):
            api.decompress_file(hostile, tmp_path / "ft.out", base=tmp_path)
        assert not (tmp_path / "ft.out").exists()


def test_a_failed_compression_stops_hashing_the_base(tmp_path, monkeypatch):
    """The base's sha256 is computed beside the coding; when the coding fails, that thread
    stops at its next piece instead of reading the rest of the base first."""
    import threading
    import time

    from ansz import reader

    monkeypatch.setattr(reader, "_BASE_PIECE", 1 << 16)
    rng = np.random.default_rng(8)
    base = _write(tmp_path / "base.safetensors",
                  {"w": (rng.standard_normal(2_000_000) * 0.05).astype(np.float32)})
    src = _write(tmp_path / "ft.safetensors",
                 {"w": (rng.standard_normal(2_000_000) * 0.05).astype(np.float32)})
    pieces = -(-base.stat().st_size // (1 << 16))
    hashed = []
    real_read = reader.BaseFile.read

    def read(self, start, n):
        if threading.current_thread().name.startswith("ansz-beside"):
            hashed.append(n)
            time.sleep(0.005)
        return real_read(self, start, n)

    def fail(*args, **kwargs):
        raise RuntimeError("coder failed")

    monkeypatch.setattr(reader.BaseFile, "read", read)
    monkeypatch.setattr(api, "encode_against", fail, raising=False)
    from ansz import base as base_module

    monkeypatch.setattr(base_module, "encode_delta", fail)
    with pytest.raises(RuntimeError, match="coder failed"):
        api.compress_file(src, tmp_path / "ft.ansz", base=base, threads=2)
    assert 0 < len(hashed) < pieces / 2
    assert not (tmp_path / "ft.ansz").exists() and leftovers(tmp_path) == []


def test_a_tensor_repeated_across_shards_is_stored_once_against_the_other_shard(tmp_path):
    """A tensor with no partner of its name in the base, but equal bytes under another name
    (a tied head in the last shard, the embedding in the first), copies the base."""
    rng = np.random.default_rng(6)
    emb = (rng.standard_normal((400, 100)) * 0.05).astype(DTYPES["BF16"])
    other = (rng.standard_normal((400, 100)) * 0.05).astype(DTYPES["BF16"])
    first = _write(tmp_path / "model-00001-of-00002.safetensors",
                   {"embed.weight": emb, "layer.w": other})
    second = _write(tmp_path / "model-00002-of-00002.safetensors",
                    {"lm_head.weight": emb, "near.w": (other.astype(np.float32) + 1e-3).astype(
                        DTYPES["BF16"])})
    alone = api.compress_file(second, tmp_path / "alone.ansz", chunk_size=CHUNK)
    dst = tmp_path / "second.ansz"
    r = api.compress_file(second, dst, chunk_size=CHUNK, base=first)
    kinds = _kinds(dst)
    assert set(kinds["lm_head.weight"]) == {COPY_BASE}
    assert COPY_BASE not in kinds["near.w"]  # equal shape, other bytes: not a copy
    assert r.compressed_size < alone.compressed_size - 0.5 * emb.nbytes
    api.decompress_file(dst, tmp_path / "out", base=first)
    assert (tmp_path / "out").read_bytes() == second.read_bytes()
    # against a container of the first shard too
    api.compress_file(first, tmp_path / "first.ansz", chunk_size=CHUNK)
    api.compress_file(second, tmp_path / "second2.ansz", chunk_size=CHUNK,
                      base=tmp_path / "first.ansz")
    assert set(_kinds(tmp_path / "second2.ansz")["lm_head.weight"]) == {COPY_BASE}
