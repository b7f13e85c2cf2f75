"""A tiny random-weight llama-architecture model in GGUF, written with the ``gguf`` package.

llama.cpp loads it like any llama checkpoint: 2 layers, hidden size 64, a SentencePiece ("llama")
vocabulary of a few hundred pieces: the control tokens, the 256 byte-fallback tokens ``<0x00>``..
``<0xFF>`` (so any text tokenizes), printable ASCII and a few JSON/English pieces (so prompts do not
cost one token per byte). It has no chat template, so llama-cpp-python's server formats chats as
``llama-2``. Its answers are nonsense; under a grammar (structured outputs) they are schema-valid
nonsense, which is what a protocol test needs. Seeded: the same bytes every time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LAYERS = 2
HIDDEN = 64
HEADS = 4
FFN = 128
CONTEXT = 8192
SEED = 13

# pieces merged by the SentencePiece tokenizer when every shorter prefix is also a piece
_WORDS = ("the", "and", "to", "of", "a", "in", "is", "you", "for", "your", "with", "on", "that", "this",
          "label", "confidence", "summary", "reply", "cited", "ids", "text", "subject", "body", "id",
          "type", "string", "number", "object", "array", "properties", "required", "enum", "items",
          "task", "JSON", "schema", "answer", "record", "documents", "title", "url")
_JSON = ('{"', '":', '",', '"}', '":"', '", "', '": "', '": ', '[]', '{}', '"]')


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    """(pieces, scores, token types) in SentencePiece order: control, bytes, pieces."""
    import gguf

    T = gguf.TokenType
    pieces = ["<unk>", "<s>", "</s>"]
    types = [T.UNKNOWN, T.CONTROL, T.CONTROL]
    pieces += [f"<0x{b:02X}>" for b in range(256)]
    types += [T.BYTE] * 256
    extra: list[str] = ["\u2581"] + [chr(c) for c in range(0x21, 0x7F)]
    for word in _WORDS:
        full = "\u2581" + word
        extra += [full[:n] for n in range(2, len(full) + 1)] + [word[:n] for n in range(2, len(word) + 1)]
    for frag in _JSON:
        extra += [frag[:n] for n in range(2, len(frag) + 1)]
    seen: set[str] = set()
    for piece in extra:
        if piece not in seen:
            seen.add(piece)
            pieces.append(piece)
            types.append(T.NORMAL)
    # longer pieces score higher, so the tokenizer prefers them when merging
    scores = [0.0] * 259 + [float(len(p)) for p in pieces[259:]]
    return pieces, scores, [int(t) for t in types]


def write_tiny_llama(path: Path, seed: int = SEED) -> Path:
    """Write the model to ``path`` (a .gguf file) and return it."""
    import gguf

    pieces, scores, types = vocabulary()
    rng = np.random.default_rng(seed)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("aiop-tiny-random-llama")
    w.add_context_length(CONTEXT)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(HEADS)
    w.add_rope_dimension_count(HIDDEN // HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(pieces)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    vocab = len(pieces)
    # numpy shapes are (rows, cols) = GGUF's (ne1, ne0): a (out, in) matrix, as the converters write it
    w.add_tensor("token_embd.weight", weight(vocab, HIDDEN))
    w.add_tensor("output_norm.weight", np.ones(HIDDEN, dtype=np.float32))
    w.add_tensor("output.weight", weight(vocab, HIDDEN))
    for i in range(LAYERS):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(f"blk.{i}.{name}.weight", weight(HIDDEN, HIDDEN))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", weight(FFN, HIDDEN))
        w.add_tensor(f"blk.{i}.ffn_up.weight", weight(FFN, HIDDEN))
        w.add_tensor(f"blk.{i}.ffn_down.weight", weight(HIDDEN, FFN))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


if __name__ == "__main__":  # python -m tests.thirdparty.tiny_model OUT.gguf
    import sys

    print(write_tiny_llama(Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-llama.gguf")))
