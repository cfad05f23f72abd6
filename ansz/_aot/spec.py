"""The kernel signatures the ahead-of-time library holds: those ansz calls (numba-free).

Each kernel maps to its signatures, one type per argument:

- ``"u8[:]"``, ``"i64[:,:]"``: a C-contiguous, aligned 1-D or 2-D array of that dtype that
  the kernel only reads; ``"u8[:] out"``: one it writes (it must also be writeable);
- ``"u32"``, ``"i64"``, ``"f64"``, ``"b1"``: a scalar of that type (np.uint32; int or
  np.int64; float or np.float64; bool).

Dtype letters: u8 u16 u32 u64 i64 (numpy's uint8 .. int64). A call matching none of a
kernel's signatures runs the JIT kernel, as does every kernel not listed here; the tests
check that the product's calls all match and that every signature here is used.

RESULT_CAPACITY bounds the arrays a kernel returns (alone or in a tuple), in order: the most
elements each can hold, a Python expression over the kernel's parameter names. The library
copies a returned array into a buffer of that size; a larger one sends the call to the JIT.
"""

from __future__ import annotations

U8, U16, U32, U64, I64 = "u8[:]", "u16[:]", "u32[:]", "u64[:]", "i64[:]"
OUT_U8, OUT_U16, OUT_U32, OUT_I64 = "u8[:] out", "u16[:] out", "u32[:] out", "i64[:] out"
#: Element arrays of the 16-, 32- and 64-bit coding-pair layouts.
ELEMENTS = (U16, U32, U64)

SIGNATURES: dict[str, list[tuple[str, ...]]] = {
    # coding pairs and fields (ansz._kernels.fields)
    "split_pairs16": [(U16, "u32", "u32", "u32", OUT_U8, OUT_U8)],
    "split_pairs32": [(U32, "u32", "u32", "u32", OUT_U8, OUT_U8)],
    "split_pairs": [(U64, "u32", "u32", "u32", OUT_U8, OUT_U8)],
    "join_fielded16": [(U8, U8, "u32", "u32", "u32", "b1", U16, OUT_U16)],
    "join_pairs32": [(U8, U8, "u32", "u32", "u32", OUT_U32)],
    "join_pairs": [(U8, U8, "u32", "u32", "u32", "u64[:] out")],
    "gather_escapes": [(U8, e, "u32", "u32", OUT_U16) for e in ELEMENTS],
    "patch_escapes": [(U8, U16, "u32", "u32", e + " out") for e in (U32, U64)],
    "field_histogram": [(e, "u32", "i64", "i64") for e in (U32, U64)],
    "choose_field": [("i64[:,:]", "i64[:,:]", "b1")],
    "choose_field16": [(U16, "i64", I64, OUT_U32, OUT_I64)],
    "pack_top": [(U8, "i64", OUT_U8)],
    "unpack_top": [(U8, "i64", OUT_U8)],
    # byte histograms, rANS, the prefix codes' encoders, and a chunk's streams coded in one
    # call (ansz._kernels.rans)
    "code_histogram": [(U8, OUT_U32)],
    "entropy_bits": [(I64,)],
    "sampled_entropy": [(U8, "i64")],
    "huffman_payload_bits": [(I64,)],
    "prefix_encode": [(U8, U32, U8, OUT_U8)],
    "huffman_code_lengths": [(I64, "i64")],
    "huffman_canonical_codes": [(U8,)],
    "qlc_optimal_areas": [(I64,)],
    "qlc_code_table": [(U8, U8)],
    "encode_streams": [(U8, U8, "i64", U8, "b1", U8, OUT_I64, "b1", I64, "b1", "i64", "b1",
                        I64, "f64", "f64", OUT_U32, OUT_U16, OUT_U8, "i64")],
    "encoder_table": [(U32, "i64")],
    "plan_table": [(I64, "f64")],
    "write_varints": [(U32, OUT_U8)],
    "read_varints": [(U8, "i64", OUT_U32)],
    "read_pair_table": [(U8, "i64", OUT_U16, OUT_U32)],
    "rans_encode": [(U8, U64, OUT_U16)],
    "rans_decode12": [(U16, U8, U32, OUT_U8), (U16, U16, U32, OUT_U16)],
    "rans_decode14": [(U16, U8, U32, OUT_U8), (U16, U16, U32, OUT_U16)],
    "encoder_table_lanes": [(U32, "i64")],
    "write_bitlen_table": [(U32, OUT_U8)],
    "read_bitlen_table": [(U8, "i64", OUT_U32)],
    "rans_encode_wide": [(U8, U64, U32, OUT_U16, "i64", "i64")],
    "rans_decode_wide12": [(U16, U8, U32, OUT_U8, "i64")],
    "rans_decode_wide14": [(U16, U8, U32, OUT_U8, "i64")],
    "build_decoder_tables": [(U8, U32, OUT_U8, OUT_U32), (U16, U32, OUT_U16, OUT_U32)],
    "decode_pairs16": [(U8, "b1", "i64", "i64", OUT_U8, OUT_U8, OUT_U8, OUT_U32, OUT_U32,
                        OUT_U16, OUT_U16)],
    "decode_pairs32": [(U8, "b1", "i64", "i64", OUT_U8, OUT_U8, OUT_U8, OUT_U32, OUT_U32,
                        OUT_U16, OUT_U32)],
    # delta chunks (ansz._kernels.delta): elements of 8, 16 and 32 bits
    "delta_encode": [(e, e, OUT_U8, OUT_U8) for e in (U8, U16, U32)],
    "delta_decode": [(e, U8, U64, "i64", e + " out") for e in (U8, U16, U32)],
    # prefix codes' decoders (ansz._kernels.prefix)
    "huffman_read_table": [(U8,)],
    "huffman_decode": [(U8, U16, "i64", OUT_U8)],
    "qlc_build_tables": [(I64, U8)],
    "qlc_read_table": [(U8,)],
    "qlc_decode": [(U8, U32, U16, OUT_U8)],
}

RESULT_CAPACITY: dict[str, tuple[str, ...]] = {
    "field_histogram": ("1 << bits",),
    "code_histogram": ("256",),
    "plan_table": ("counts.size",),
    "encoder_table": ("freq.size * 8",),
    "encoder_table_lanes": ("freq.size * 2",),
    "huffman_code_lengths": ("256",),
    "huffman_canonical_codes": ("256",),
    "qlc_code_table": ("256", "256"),
    "huffman_read_table": ("1 << 15",),  # the table has 2^T entries, T <= 15
    "qlc_optimal_areas": ("8", "counts.size"),
    "qlc_build_tables": ("256", "2048"),  # order: at most 8 areas of 2^8 ranks
    "qlc_read_table": ("256", "2048"),
}
