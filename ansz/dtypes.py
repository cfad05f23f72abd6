"""Every dtype ansz knows, in one place: file dtypes, coding-pair layouts, container codes.

- :data:`SAFETENSORS_BYTES`, :data:`SUBBYTE_BITS`: the dtypes a safetensors header may name,
  with their element size.
- :data:`GGML_TYPES`: the GGML tensor types a GGUF file may hold (id -> name, elements per
  block, bytes per block); :data:`BLOCK_TYPE_NAMES` are those ansz codes field by field.
- :data:`PAIR_LAYOUTS`: how each dtype splits into a *code* byte and *raw* bits
  (:mod:`ansz.pairs` does the splitting).
- :data:`DTYPE_CODES`: the container's Dtype_Code numbers (docs/FORMAT.md, "Dtype codes")
  and the coding each one means; the element width of a code follows from the layout.
- :data:`ELEMENT_BYTES`: bytes per element (per block for block-quantized types) of every
  tensor dtype, what chunks are cut at.

Everything here is plain data: importing it costs nothing (no numpy).
"""

from __future__ import annotations

from typing import NamedTuple

#: Element size in bytes of every whole-byte dtype the safetensors library (0.8) knows.
SAFETENSORS_BYTES: dict[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "F8_E4M3FNUZ": 1, "F8_E5M2FNUZ": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}

#: Element size in bits of the packed sub-byte dtypes (OCP MX formats).
SUBBYTE_BITS: dict[str, int] = {"F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}

#: GGML type id -> (name, elements per block, bytes per block), from ggml's type traits
#: (``ggml/src/ggml.c``). Names of the non-quantized types follow safetensors' spelling.
#: Q8_1 (9) is left out: it is never stored in files, and ggml (36 bytes) and the gguf
#: package (40) disagree on its size. A tensor of a type not listed makes the file invalid
#: (it is then coded as generic bytes).
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
}

#: GGML type name -> (elements per block, bytes per block).
GGML_BLOCKS: dict[str, tuple[int, int]] = {name: (elems, size)
                                          for name, elems, size in GGML_TYPES.values()}

#: The block-quantized types coded field by field (:mod:`ansz.blocks`); the others are
#: coded as bytes.
BLOCK_TYPE_NAMES = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
                    "Q6_K", "IQ4_NL", "MXFP4")

#: Bytes per element of every tensor dtype, per block for the block-quantized ones.
ELEMENT_BYTES: dict[str, int] = {**{name: size for name, (_, size) in GGML_BLOCKS.items()},
                                 **SAFETENSORS_BYTES}


class PairLayout(NamedTuple):
    """How one dtype splits into (code, raw). ``width`` in bytes, ``code_shift`` in bits."""

    name: str
    width: int
    code_shift: int

    @property
    def raw_width(self) -> int:
        """Raw bytes per element (``width - 1``)."""
        return self.width - 1


#: dtype name (safetensors spelling) -> layout. Measured choices are noted beside each; the
#: layouts are part of the container format (docs/FORMAT.md, "Dtype codes").
PAIR_LAYOUTS: dict[str, PairLayout] = {
    # BF16: the 8 exponent bits; raw = sign + 7 mantissa bits.
    "BF16": PairLayout("BF16", 2, 7),
    # F16: the high byte (sign, 5 exponent bits, top 2 mantissa bits). Code entropy on the
    # corpus (bits/element): shift 8 -> 5.544 / 5.563 (MiniLM / MPNet fp16), shift 7 (no sign,
    # top 3 mantissa bits) -> 5.541 / 5.567, shift 6 -> 6.54: a tie, so the plain high byte.
    "F16": PairLayout("F16", 2, 8),
    # F32: the 8 exponent bits (MiniLM f32: 2.614 bits; the high byte, shift 24: 2.692).
    "F32": PairLayout("F32", 4, 23),
    # F64: the top 8 of the 11 exponent bits; the low 3 go to raw. Not measured: the corpus
    # has no f64 weights.
    "F64": PairLayout("F64", 8, 55),
    # Whole-byte codes: every 8-bit type, and any byte stream.
    "BYTES": PairLayout("BYTES", 1, 0),
    **{name: PairLayout(name, 1, 0) for name in ("BOOL", "U8", "I8", "F8_E4M3", "F8_E5M2",
                                                  "F8_E8M0")},
}


def layout_for(dtype: str) -> PairLayout:
    """The coding-pair layout for a dtype, or the whole-byte layout for dtypes without one.

    Integer dtypes wider than a byte (and anything unknown) are coded as a plain byte stream.
    """
    return PAIR_LAYOUTS.get(dtype, PAIR_LAYOUTS["BYTES"])


class DtypeCode(NamedTuple):
    """What a Record_Header.Dtype_Code means: how the chunk payload is coded."""

    name: str  #: a key of PAIR_LAYOUTS, or a block-quantized type of BLOCK_TYPE_NAMES
    fielded: bool = False  #: the payload starts with a Field_Header (fielded floats)

    @property
    def width(self) -> int:
        """Element width in bytes (the block size for a block-quantized type)."""
        if self.name in GGML_BLOCKS and self.name not in PAIR_LAYOUTS:
            return GGML_BLOCKS[self.name][1]
        return PAIR_LAYOUTS[self.name].width

    @property
    def code_shift(self) -> int:
        """The plain coding pair's shift (0 for block-quantized types)."""
        layout = PAIR_LAYOUTS.get(self.name)
        return layout.code_shift if layout is not None else 0


#: Dtype codes (docs/FORMAT.md, "Dtype codes"). New codes may be added without a version
#: bump (an old decoder reports them as unsupported); an existing code never changes
#: meaning. Codes 7-10 (plain pairs) are still read; new files use the fielded 11-14. Codes
#: 32 and up are the block-quantized GGML types, coded by field (docs/FORMAT.md,
#: "Block-quantized chunk payload").
DTYPE_CODES: dict[int, DtypeCode] = {
    0: DtypeCode("BYTES"),
    1: DtypeCode("BOOL"),
    2: DtypeCode("U8"),
    3: DtypeCode("I8"),
    4: DtypeCode("F8_E4M3"),
    5: DtypeCode("F8_E5M2"),
    6: DtypeCode("F8_E8M0"),
    7: DtypeCode("F16"),
    8: DtypeCode("BF16"),
    9: DtypeCode("F32"),
    10: DtypeCode("F64"),
    11: DtypeCode("F16", True),
    12: DtypeCode("BF16", True),
    13: DtypeCode("F32", True),
    14: DtypeCode("F64", True),
    **{32 + k: DtypeCode(name) for k, name in enumerate(BLOCK_TYPE_NAMES)},
}
BYTES = 0  #: the code of generic bytes

#: The code new chunks of each coding get: the fielded one where there is one.
_CODE_OF = {d.name: code for code, d in sorted(DTYPE_CODES.items())}


def dtype_code_for(dtype: str | None) -> int:
    """The code a chunk of ``dtype`` is coded with: its block type's or coding-pair
    layout's code, else BYTES.

    Dtypes coded as plain bytes (I32, U16, sub-byte types, unquantized GGML ints...) and
    layouts this container version has no code for are coded as BYTES, which round-trips
    anything.
    """
    if dtype is None:
        return BYTES
    if dtype in BLOCK_TYPE_NAMES:
        return _CODE_OF[dtype]
    return _CODE_OF.get(layout_for(dtype).name, BYTES)
