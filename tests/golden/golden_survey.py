"""What a container holds, read from its bytes as docs/FORMAT.md describes them.

:func:`survey` walks an ``.ansz`` container record by record with its own small parser
(struct layouts and tables copied from docs/FORMAT.md, not imported from ``ansz``), and
reports for every chunk its dtype code, the method of every stream, its field (fielded
floats) and its form (block-quantized types), plus the index record's type. The golden
generator (``make_golden.py``) records this in MANIFEST.json as what each golden file
covers, and checks that every file takes the paths it was built for; ``test_golden.py``
checks that the files as a whole cover every dtype code, stream method, field width and
block type.

Only framing is parsed (stream lengths, method bytes, the rANS scale byte, the field
header); decoding is ``ansz``'s job and the golden tests check it separately.
"""

from __future__ import annotations

import json
import struct
from collections import Counter

FILE_HEADER = struct.Struct("<8sHHIII")  # Magic, version, flags, max chunk size, reserved, CRC
RECORD_HEADER = struct.Struct("<BBHIQIIQQII")
FIELD_HEAD = struct.Struct("<BBHI")  # Field_Shift, Field_Bits, Code_Base, Escape_Count
U32 = struct.Struct("<I")
MAGIC = b"\x89ANSZ\r\n\x1a"

CHUNK, INDEX, ZINDEX = 1, 2, 3

#: Chunk_Kind (docs/FORMAT.md, "Chunk kinds"): the low byte, and the KEPT bit.
CHUNK_KINDS = {0: "PLAIN", 1: "DELTA", 2: "COPY_BASE", 3: "COPY_CHUNK"}
KEPT = 0x0100

#: Stream methods (docs/FORMAT.md, "Stream").
METHODS = {0: "STORED", 1: "CONSTANT", 2: "RANS_U16", 3: "ZSTD", 4: "HUFFMAN", 5: "QLC",
           6: "RANS", 7: "RANS_PAIRS", 8: "RANS_WIDE"}
#: Methods whose second byte is the table's Scale_Bits; they are reported as "NAME/bits".
SCALED = {2, 6, 7, 8}

#: Dtype codes (docs/FORMAT.md, "Dtype codes"): code -> (name, width, fielded).
PAIR_CODES = {
    0: ("BYTES", 1, False), 1: ("BOOL", 1, False), 2: ("U8", 1, False), 3: ("I8", 1, False),
    4: ("F8_E4M3", 1, False), 5: ("F8_E5M2", 1, False), 6: ("F8_E8M0", 1, False),
    7: ("F16", 2, False), 8: ("BF16", 2, False), 9: ("F32", 4, False), 10: ("F64", 8, False),
    11: ("F16", 2, True), 12: ("BF16", 2, True), 13: ("F32", 4, True), 14: ("F64", 8, True),
}
#: Block-quantized codes: code -> (name, block bytes, number of planes), from the
#: "Block-quantized chunk payload" table.
BLOCK_CODES = {
    32: ("Q4_0", 18, 3), 33: ("Q4_1", 20, 5), 34: ("Q5_0", 22, 3), 35: ("Q5_1", 24, 5),
    36: ("Q8_0", 34, 3), 37: ("Q2_K", 84, 7), 38: ("Q3_K", 110, 4), 39: ("Q4_K", 144, 7),
    40: ("Q5_K", 176, 7), 41: ("Q6_K", 210, 4), 42: ("IQ4_NL", 18, 3), 43: ("MXFP4", 17, 2),
}


class SurveyError(ValueError):
    """The bytes do not follow docs/FORMAT.md's framing."""


def pad8(n: int) -> int:
    return -(-n // 8) * 8


def streams(payload: bytes, pos: int = 0) -> list[bytes]:
    """The framed streams of ``payload[pos:]``: u32 length, stream, a zero byte if odd."""
    out = []
    while pos < len(payload):
        if pos + 4 > len(payload):
            raise SurveyError("stream length runs past the payload")
        (n,) = U32.unpack_from(payload, pos)
        pos += 4
        if pos + n > len(payload):
            raise SurveyError("stream runs past the payload")
        out.append(payload[pos:pos + n])
        pos += n + (n & 1)
    if pos != len(payload):
        raise SurveyError("odd stream without its pad byte")
    return out


def stream_kind(stream: bytes) -> str:
    """A stream's method name, with the table's scale bits for rANS methods ("RANS/12"),
    and the number of states for wide ones ("RANS_WIDE/12x32")."""
    if not stream:
        raise SurveyError("empty stream")
    method = stream[0]
    if method not in METHODS:
        raise SurveyError(f"unknown stream method {method}")
    if method == 8 and len(stream) > 4:  # RANS_WIDE: the state count too ("RANS_WIDE/12x32")
        return f"{METHODS[method]}/{stream[1]}x{1 << stream[4]}"
    if method in SCALED:
        return f"{METHODS[method]}/{stream[1]}"
    return METHODS[method]


def chunk_survey(code: int, payload: bytes) -> dict:
    """One chunk: ``{"dtype_code", "streams", "field", "block_form"}``."""
    out = {"dtype_code": code, "streams": [], "field": None, "block_form": None}
    if code in PAIR_CODES:
        name, width, fielded = PAIR_CODES[code]
        if fielded:
            if len(payload) < FIELD_HEAD.size:
                raise SurveyError("fielded payload without its field header")
            shift, bits, base, escapes = FIELD_HEAD.unpack_from(payload)
            out["field"] = {"shift": shift, "bits": bits, "top": shift + bits, "base": base,
                            "escapes": escapes}
            found = streams(payload, FIELD_HEAD.size)
            expected = width + (escapes > 0)
        else:
            found = streams(payload)
            expected = width
        if len(found) != expected:
            raise SurveyError(f"{name} chunk has {len(found)} streams, expected {expected}")
    elif code in BLOCK_CODES:
        name, _, planes = BLOCK_CODES[code]
        found = streams(payload)
        if len(found) not in (1, planes):
            raise SurveyError(f"{name} chunk has {len(found)} streams")
        out["block_form"] = "whole" if len(found) == 1 else "planes"
    else:
        raise SurveyError(f"unknown dtype code {code}")
    out["streams"] = [stream_kind(s) for s in found]
    return out


def survey(blob: bytes) -> dict:
    """Walk a container: its chunks (record order), index record type and index JSON."""
    if blob[:8] != MAGIC:
        raise SurveyError("not an ansz container")
    _, version, flags, max_chunk, kept_size, _ = FILE_HEADER.unpack_from(blob)
    pos = FILE_HEADER.size
    chunks = []
    while True:
        if pos + RECORD_HEADER.size > len(blob):
            raise SurveyError("record header runs past the file")
        (rtype, code, kind, segment, _, decoded, plen, _, _, number,
         _) = RECORD_HEADER.unpack_from(blob, pos)
        payload = blob[pos + RECORD_HEADER.size:pos + RECORD_HEADER.size + plen]
        if rtype in (INDEX, ZINDEX):
            break
        if rtype != CHUNK:
            raise SurveyError(f"record {number} has type {rtype}")
        if kind & 0xFF not in CHUNK_KINDS or kind & ~(0xFF | KEPT):
            raise SurveyError(f"record {number} has chunk kind {kind:#06x}")
        name = CHUNK_KINDS[kind & 0xFF] + ("+KEPT" if kind & KEPT else "")
        if kind & 0xFF == 0:
            chunk = chunk_survey(code, payload)
        else:  # its payload is no chunk payload
            chunk = {"dtype_code": code, "streams": [], "field": None, "block_form": None}
        chunk.update(record=number, segment=segment, decoded_length=decoded,
                     payload_length=plen, kind=name)
        chunks.append(chunk)
        pos += RECORD_HEADER.size + pad8(plen)
    if rtype == ZINDEX:
        import zstandard

        text = zstandard.ZstdDecompressor().decompress(payload, max_output_size=decoded)
    else:
        text = payload
    index = json.loads(text)
    return {"format_version": version, "flags": flags, "kept_size": kept_size,
            "max_chunk_size": max_chunk, "index_record_type": rtype, "index": index,
            "chunks": chunks}


def covers(s: dict) -> dict:
    """What a survey covers, as sorted lists (what MANIFEST.json records per file).

    ``fields`` are ``"DTYPE/bits@top"``; ``escapes`` the fielded dtypes with a chunk whose
    field escapes; ``block_forms`` ``"TYPE/planes"`` or ``"TYPE/whole"``.
    """
    methods, fields, escapes, forms = Counter(), set(), set(), set()
    for c in s["chunks"]:
        methods.update(c["streams"])
        name = (PAIR_CODES.get(c["dtype_code"]) or BLOCK_CODES[c["dtype_code"]])[0]
        if c["field"] is not None:
            fields.add(f"{name}/{c['field']['bits']}@{c['field']['top']}")
            if c["field"]["escapes"]:
                escapes.add(name)
        if c["block_form"] is not None:
            forms.add(f"{name}/{c['block_form']}")
    return {
        "format": s["index"]["format"],
        "index_record_type": s["index_record_type"],
        "max_chunk_size": s["max_chunk_size"],
        "chunk_count": len(s["chunks"]),
        "dtype_codes": sorted({c["dtype_code"] for c in s["chunks"]}),
        "stream_methods": sorted(methods),
        "fields": sorted(fields, key=_field_key),
        "escapes": sorted(escapes),
        "block_forms": sorted(forms),
        "flags": s["flags"],
        "chunk_kinds": sorted({c["kind"] for c in s["chunks"]}),
    }


def _field_key(f: str):
    name, rest = f.split("/")
    bits, top = rest.split("@")
    return name, int(bits), int(top)


def segment_chunks(s: dict) -> dict[str | None, list[dict]]:
    """Chunks by the name of their segment (None: opaque segments, all together)."""
    out: dict = {}
    for c in s["chunks"]:
        name = s["index"]["segments"][c["segment"]]["name"]
        out.setdefault(name, []).append(c)
    return out


def locate(blob: bytes, offset: int) -> str:
    """Where ``offset`` lies in a container, in FORMAT.md's terms (for failure messages)."""
    if offset < FILE_HEADER.size:
        return f"the file header (byte {offset})"
    if offset >= len(blob) - 32:
        return f"the trailer (byte {offset - (len(blob) - 32)})"
    pos, names = FILE_HEADER.size, None
    try:
        names = [seg["name"] for seg in survey(blob)["index"]["segments"]]
    except Exception:  # a damaged container: describe records without segment names
        pass
    while pos + RECORD_HEADER.size <= len(blob):
        (rtype, code, _, segment, _, _, plen, _, _, number,
         _) = RECORD_HEADER.unpack_from(blob, pos)
        end = pos + RECORD_HEADER.size + pad8(plen)
        if offset < end:
            if rtype == CHUNK:
                seg = f"segment {segment}"
                if names is not None and segment < len(names) and names[segment] is not None:
                    seg += f" {names[segment]!r}"
                what = f"chunk record {number} ({seg}, dtype code {code})"
            else:
                what = f"the index record (type {rtype})"
            inner = offset - pos
            if inner < RECORD_HEADER.size:
                return f"{what}, header byte {inner}"
            return f"{what}, payload byte {inner - RECORD_HEADER.size} of {plen}"
        if rtype != CHUNK:
            break
        pos = end
    return f"byte {offset}, outside any record"
