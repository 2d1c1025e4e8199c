"""A small Gemma-style tokenizer with CodeGemma's special ids: FIM pieces at 67-70, turns at 106-107."""

from __future__ import annotations

import string

from jupyter_codegemma.backends.local.tokenizer import Tokenizer
from jupyter_codegemma.backends.local.checkpoints.gguf_vocab import tokenizer_from_gguf_vocab

NORMAL, CONTROL, UNKNOWN, BYTE = 1, 3, 2, 6
VOCAB_SIZE = 512


def codegemma_like_tokenizer() -> Tokenizer:
    specials = {0: "<pad>", 1: "<eos>", 2: "<bos>", 3: "<unk>", 67: "<|fim_prefix|>", 68: "<|fim_middle|>",
                69: "<|fim_suffix|>", 70: "<|file_separator|>", 106: "<start_of_turn>", 107: "<end_of_turn>"}
    tokens, types = [], []
    for i in range(108):
        tokens.append(specials.get(i, f"<unused{i}>"))
        types.append(UNKNOWN if i == 3 else CONTROL)
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(BYTE)
    words = ["▁"] + list(string.ascii_letters + string.digits + string.punctuation)
    words += ["▁" + c for c in string.ascii_lowercase] + ["def", "return", "▁return", "print", "self", "▁▁▁▁"]
    for word in words:
        if len(tokens) == VOCAB_SIZE:
            break
        if word not in tokens:
            tokens.append(word)
            types.append(NORMAL)
    while len(tokens) < VOCAB_SIZE:
        tokens.append(f"<unused{len(tokens)}>")
        types.append(CONTROL)
    scores = [0.0 if t != NORMAL else -float(i) / 100 for i, t in enumerate(types)]
    # Longer pieces score higher, so BPE merges prefer them.
    scores = [s + len(tok) if types[i] == NORMAL else s for i, (s, tok) in enumerate(zip(scores, tokens))]
    return tokenizer_from_gguf_vocab(tokens, scores, types, bos_id=2, eos_id=1, unk_id=3, pad_id=0,
                                     source="codegemma-like test vocabulary")
