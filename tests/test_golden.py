"""Golden files: today's reader and writer against containers and payloads committed earlier.

Every other codec and container test encodes and decodes with today's code, so a change that
breaks both sides the same way (plane order, varint layout, field header, method numbers...)
passes them. These tests hold today's code to bytes written before:

- each container in tests/golden/ decodes (stream and seekable readers, ``verify_file``,
  ``ansz.open``) to the original whose sha256 MANIFEST.json records;
- today's writer, given that original and the recorded options, writes the container byte
  for byte (not for the files imitating earlier writers, which are checked by decoding);
- the streams and chunk payloads of vectors.json encode to exactly their bytes and decode
  back;
- docs/FORMAT.md's worked example is what the writer produces;
- together the golden files cover every dtype code, stream method, field width and block
  type the reader knows.

tests/golden/README.md says when regenerating them is legitimate.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import io
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import ansz
from ansz import api, blocks, container, dtypes, options, streams
from ansz.errors import AnszError, BaseMismatchError
from ansz.pairs import FIELD_TOPS, MAX_FIELD_BITS, MIN_FIELD_BITS

GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN))

import golden_survey as gs  # noqa: E402
import make_golden as mg  # noqa: E402

MANIFEST = json.loads((GOLDEN / mg.MANIFEST).read_text())
FILES = {e["file"]: e for e in MANIFEST["files"]}
VECTORS = {v["name"]: v for v in json.loads((GOLDEN / mg.VECTORS).read_text())["vectors"]}
FORMAT_MD = Path(__file__).resolve().parent.parent / "docs" / "FORMAT.md"

REGENERATE = ("If this change of bytes is intended, docs/FORMAT.md must describe it; only then "
              "regenerate with `python tests/golden/make_golden.py` (tests/golden/README.md).")


def first_difference(a: bytes, b: bytes) -> int | None:
    """The first offset where ``a`` and ``b`` differ (the shorter length if one is a prefix
    of the other), or None if they are equal."""
    if a == b:
        return None
    n = min(len(a), len(b))
    diff = np.flatnonzero(np.frombuffer(a[:n], np.uint8) != np.frombuffer(b[:n], np.uint8))
    return int(diff[0]) if diff.size else n


def drift(what: str, expected: bytes, got: bytes, container_blob: bytes | None = None,
          golden: str = "the golden bytes") -> str:
    """A failure message: what drifted, where first, and what to do about it."""
    i = first_difference(expected, got)
    where = "" if container_blob is None else f", in {gs.locate(container_blob, i)}"
    return (f"{what}: differs from {golden} at offset {i}{where} ({len(expected)} bytes "
            f"expected, {len(got)} now; expected[{i}:{i + 12}] = {expected[i:i + 12].hex()}, "
            f"now {got[i:i + 12].hex()}). {REGENERATE}")


def golden_bytes(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


@contextlib.contextmanager
def reading(name: str, how: str):
    """Report a reader's error on golden bytes as the format drift it is."""
    try:
        yield
    except AnszError as e:
        pytest.fail(f"{name}: {how} rejects it ({e}): today's reader no longer reads what "
                    f"was written. {REGENERATE}")


def based(name: str) -> bool:
    """Whether a golden container is coded against a base (other golden files' originals)."""
    return bool(FILES[name]["options"].get("base"))


def base_for(name: str, workdir: Path) -> Path | None:
    """The base a golden container was coded against, written under ``workdir`` from the
    originals of the golden containers its options name (None for one without a base)."""
    return mg.write_base(FILES[name]["options"],
                         lambda g: (FILES[g]["original"]["name"], decoded(g)), workdir)


@functools.lru_cache(maxsize=None)
def decoded(name: str) -> bytes:
    """A golden container decoded: by the stream reader, or from the file with its base."""
    if based(name):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            base = base_for(name, tmp)
            with reading(name, "ansz.decompress_file with its base"):
                api.decompress_file(GOLDEN / name, tmp / "original", threads=1, base=base)
            return (tmp / "original").read_bytes()
    out = io.BytesIO()
    with reading(name, "ansz.decompress_stream"):
        api.decompress_stream(io.BytesIO(golden_bytes(name)), out, threads=1)
    return out.getvalue()


def check_original(name: str, data: bytes, how: str) -> None:
    want = FILES[name]["original"]
    digest = hashlib.sha256(data).hexdigest()
    assert (len(data), digest) == (want["size"], want["sha256"]), (
        f"{name}: {how} gives {len(data)} bytes with sha256 {digest}, but the original "
        f"recorded in MANIFEST.json has {want['size']} bytes with sha256 {want['sha256']}: "
        f"today's reader no longer reads this golden container as it was written. "
        f"{REGENERATE}")


# ---------------------------------------------------------------------------------------------
# The golden containers


def test_manifest_lists_exactly_the_golden_files():
    on_disk = {p.name for p in GOLDEN.glob("*.ansz")}
    assert on_disk == set(FILES), (
        f"tests/golden/*.ansz {sorted(on_disk)} and MANIFEST.json {sorted(FILES)} disagree; "
        f"{REGENERATE}")


@pytest.mark.parametrize("name", sorted(FILES))
def test_golden_file_matches_its_manifest_entry(name):
    blob = golden_bytes(name)
    entry = FILES[name]
    assert (len(blob), hashlib.sha256(blob).hexdigest()) == (entry["size"], entry["sha256"]), (
        f"{name} is not the file MANIFEST.json describes (edited by hand, or regenerated "
        f"without its manifest); {REGENERATE}")
    assert gs.covers(gs.survey(blob)) == entry["covers"], (
        f"{name}: what parsing finds in it differs from MANIFEST.json's 'covers'; {REGENERATE}")


@pytest.mark.parametrize("name", sorted(FILES))
def test_reader_decodes_golden_container(name, tmp_path):
    base = base_for(name, tmp_path)
    if base is None:
        check_original(name, decoded(name), "ansz.decompress_stream")
    else:  # a stream cannot be decoded against a base, and says so
        with pytest.raises(BaseMismatchError):
            api.decompress_stream(io.BytesIO(golden_bytes(name)), io.BytesIO(), threads=1)
    out = tmp_path / "original"
    with reading(name, "ansz.decompress_file"):
        api.decompress_file(GOLDEN / name, out, threads=1, base=base)
    check_original(name, out.read_bytes(), "ansz.decompress_file")
    report = ansz.verify_file(GOLDEN / name, threads=1, base=base)
    assert report.ok, f"{name}: ansz.verify_file fails: {report.message}. {REGENERATE}"
    assert report.sha256 == FILES[name]["original"]["sha256"]


@pytest.mark.parametrize("name", sorted(n for n, e in FILES.items()
                                        if e["covers"]["format"] == "safetensors"))
def test_golden_safetensors_open_lazily(name, tmp_path):
    from ansz.formats.safetensors import parse_header

    original = decoded(name)
    check_original(name, original, "ansz.decompress_stream")
    layout = parse_header(original, len(original))
    base = base_for(name, tmp_path)
    with reading(name, "ansz.open"), ansz.open(GOLDEN / name, threads=1, base=base) as f:
        assert sorted(f.keys()) == sorted(t.name for t in layout.tensors + layout.subbyte_tensors)
        for t in layout.tensors:
            got = np.ascontiguousarray(f.get_tensor(t.name)).tobytes()
            assert got == original[t.start:t.end], (
                f"{name}: ansz.open(...).get_tensor({t.name!r}) differs from the original's "
                f"bytes [{t.start}, {t.end}). {REGENERATE}")


@pytest.mark.parametrize("name", sorted(FILES))
def test_writer_reproduces_golden_container(name, tmp_path):
    entry = FILES[name]
    if not entry["writer_reproduces"]:
        pytest.skip(f"{name} imitates an earlier writer ({entry['produced_by']}); "
                    "today's writer no longer produces it, so it is checked by decoding only")
    original = decoded(name)
    check_original(name, original, "ansz.decompress_stream")
    blob = golden_bytes(name)
    got = mg.compress(original, entry["options"], tmp_path, base_for(name, tmp_path))
    assert got == blob, drift(f"{name} recompressed with {entry['options']}", blob, got, blob)


def test_golden_files_cover_the_format():
    """Together the golden files reach every code, method, field and form the reader knows."""
    covers = [e["covers"] for e in FILES.values()]

    def union(key):
        return {v for c in covers for v in (c[key] if isinstance(c[key], list) else [c[key]])}

    problems = []

    def need(what, wanted, have):
        if set(wanted) - set(have):
            problems.append(f"{what}: none covers {sorted(set(wanted) - set(have), key=str)}")

    need("dtype codes", dtypes.DTYPE_CODES, union("dtype_codes"))
    # Every stream method the codec knows; both table scales of each rANS method.
    assert set(gs.METHODS) == set(streams.METHODS), \
        "golden_survey.METHODS no longer lists the codec's stream methods"
    methods = [n for m, n in gs.METHODS.items() if m not in gs.SCALED]
    methods += ["RANS/12", "RANS/14", "RANS_PAIRS/12", "RANS_PAIRS/14", "RANS_U16/12",
                "RANS_WIDE/12x32", "RANS_WIDE/14x32", "RANS_WIDE/12x64", "RANS_WIDE/14x64"]
    need("stream methods", methods, union("stream_methods"))
    need("fields", [f"{d}/{b}@{t}" for d, tops in FIELD_TOPS.items() for t in tops
                    for b in range(MIN_FIELD_BITS, MAX_FIELD_BITS + 1)
                    if d in ("BF16", "F16") or t == tops[0]], union("fields"))
    need("escaped fields", FIELD_TOPS, union("escapes"))
    need("block forms", [f"{t}/planes" for t in blocks.BLOCK_TYPES], union("block_forms"))
    need("chunk kinds", ["PLAIN", "PLAIN+KEPT", "COPY_CHUNK", "DELTA", "COPY_BASE"],
         union("chunk_kinds"))
    need("header flags", [container.FLAG_WIDE_RANS, container.FLAG_BASE,
                          container.FLAG_REPEATS, container.FLAG_BASE_FILES],
         {bit for f in union("flags") for bit in (1, 2, 4, 8) if f & bit})
    if not any(f.endswith("/whole") for f in union("block_forms")):
        problems.append("block forms: no chunk in the whole-chunk form")
    need("index record types", container.INDEXES, union("index_record_type"))
    need("formats", ["bytes", "safetensors", "gguf"], union("format"))
    need("empty originals", [0], union("chunk_count"))
    written = [e["options"] for e in FILES.values() if e["writer_reproduces"]]
    need("levels", options.LEVELS, {o["level"] for o in written})
    need("coders", options.CODERS, {o["coder"] for o in written})
    need("APIs", ["compress_file", "compress_stream"], {o["api"] for o in written})
    assert not problems, ("the golden files no longer cover the format: " + "; ".join(problems)
                          + ". Add a golden file to tests/golden/make_golden.py and regenerate.")


# ---------------------------------------------------------------------------------------------
# Byte-exact streams and chunk payloads


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_vector_encodes_to_its_bytes(name):
    v = VECTORS[name]
    want = bytes.fromhex(v["payload"])
    got = mg.encode_entry(v)
    what = f"vectors.json {name!r} ({v['kind']}, dtype {v['dtype']}, options {v['options']}" + (
        f", patch {v['patch']}" if v["patch"] else "") + ")"
    assert got == want, drift(what, want, got)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_vector_decodes_to_its_input(name):
    v = VECTORS[name]
    want = bytes.fromhex(v["input"])
    with reading(f"vectors.json {name!r}", f"decoding as a {v['kind']}"):
        got = mg.decode_entry(v, bytes.fromhex(v["payload"]))
    assert got == want, drift(f"vectors.json {name!r} decoded", want, got,
                              golden="the vector's input")


def test_vectors_cover_every_payload_kind():
    kinds = {k for v in VECTORS.values() for k in v["covers"]["streams"]}
    wanted = {"STORED", "CONSTANT", "ZSTD", "HUFFMAN", "QLC", "RANS/12", "RANS/14",
              "RANS_U16/12", "RANS_PAIRS/12", "RANS_PAIRS/14"}
    assert wanted <= kinds, f"vectors.json lacks {sorted(wanted - kinds)}"
    widths = {tuple(v["covers"]["field"])[0] for v in VECTORS.values() if v["covers"]["field"]}
    assert widths == set(range(MIN_FIELD_BITS, MAX_FIELD_BITS + 1))
    assert {v["dtype"] for v in VECTORS.values() if v["kind"] == "block"} == set(
        blocks.BLOCK_TYPES)


# ---------------------------------------------------------------------------------------------
# docs/FORMAT.md's worked example

_DUMP_LINE = re.compile(r"([0-9a-f]{8}): (.*)")
_HEX_WIDTH = 39  # 8 groups of 4 hex digits with a space between


def format_md_example() -> tuple[str, bytes, int, int, dict[int, int]]:
    """From the "Example" section of docs/FORMAT.md: the input as the text states it (its
    Python expression, evaluated), the chunk size, the stated output size, and the bytes
    the annotated xxd dump shows, ``{offset: byte}`` (bytes it elides with "..." are absent)."""
    text = FORMAT_MD.read_text()
    section = text[text.index("\n## Example\n"):]
    m = re.search(r"The (\d+) bytes `b\"(.*?)\" \* (\d+)`, compressed with a (\d+) MiB chunk\s+"
                  r"size into (\d+) bytes", section)
    assert m, "docs/FORMAT.md's Example no longer states its input in the form this test reads"
    stated_len, unit, repeat, mib, stated_size = m.groups()
    data = ast.literal_eval(f'b"{unit}"') * int(repeat)
    assert len(data) == int(stated_len), "docs/FORMAT.md's Example misstates its input's length"
    dump = section[section.index("```") + 3:]
    dump = dump[:dump.index("```")]
    shown: dict[int, int] = {}
    for line in dump.splitlines():
        lm = _DUMP_LINE.match(line)
        if not lm:
            continue  # an annotation's continuation (such as the index JSON)
        address, rest = int(lm.group(1), 16), lm.group(2)
        hexpart = rest[:_HEX_WIDTH].ljust(_HEX_WIDTH)
        assert rest[_HEX_WIDTH:_HEX_WIDTH + 1] in ("", " "), f"dump line {line!r}: columns"
        base, first = address - address % 16, None
        for j in range(16):
            col = (j // 2) * 5 + (j % 2) * 2
            pair = hexpart[col:col + 2]
            if re.fullmatch(r"[0-9a-f]{2}", pair):
                shown[base + j] = int(pair, 16)
                first = j if first is None else first
            else:
                assert pair.strip() in ("", "..", "."), f"dump line {line!r}: {pair!r}"
        assert first is not None and base + first == address, (
            f"dump line {line!r}: its address is not that of its first byte")
    return data, int(mib) << 20, int(stated_size), shown


def test_format_md_example_is_what_the_writer_writes():
    data, chunk_size, stated_size, shown = format_md_example()
    out = io.BytesIO()
    ansz.compress_stream(io.BytesIO(data), out, chunk_size=chunk_size, threads=1)
    blob = out.getvalue()
    assert len(blob) == stated_size, (
        f"docs/FORMAT.md's Example states {stated_size} bytes; the writer gives {len(blob)}")
    elided = [o for o in range(len(blob)) if o not in shown]
    assert all("index record" in gs.locate(blob, o) and "payload" in gs.locate(blob, o)
               for o in elided), "the dump elides bytes outside the index record's zstd frame"
    bad = sorted(o for o, b in shown.items() if blob[o] != b)
    assert not bad, (
        f"docs/FORMAT.md's Example dump differs from the writer's output at offsets "
        f"{[hex(o) for o in bad[:8]]}{' ...' if len(bad) > 8 else ''} (first in "
        f"{gs.locate(blob, bad[0])}: the dump shows {shown[bad[0]]:02x}, the writer writes "
        f"{blob[bad[0]]:02x}). Fix the code or the document, whichever is wrong.")
    # The index JSON the dump prints as text (its sha256 elided) is the writer's.
    index = gs.survey(blob)["index"]
    text = json.dumps(index, separators=(",", ":")).replace(index["sha256"], "...")
    section = FORMAT_MD.read_text().split("\n## Example\n", 1)[1]
    printed = "".join(line.strip() for line in section.splitlines()
                      if line.startswith(" " * 10) and not line.strip().startswith(("...", "(")))
    assert text in printed, f"docs/FORMAT.md's Example prints another index than {text}"
    out = io.BytesIO()
    ansz.decompress_stream(io.BytesIO(blob), out)
    assert out.getvalue() == data
