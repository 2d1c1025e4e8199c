"""The server's tokenizer, for the kernel code that counts tokens or builds chat prompts from ids.

Completions and `%%codegemma` on a base model never need it (they send text). Chat prompts for an
instruction model (backends/chat.py) and the context budgets of explain/fix do: they ask here.

Servers name the route differently; the first that answers is remembered:
  llama-cpp-python  POST /extras/tokenize {"input"} -> {"tokens"}  (adds <bos>, parses control pieces)
  vLLM              POST /tokenize {"model", "prompt", "add_special_tokens"} -> {"tokens", ...}
  llama.cpp server  POST /tokenize {"content", "add_special", "parse_special"} -> {"tokens"}
and the matching /detokenize. Ollama has none: then this says so in one line.
"""

from __future__ import annotations

from ..chat import CONTROL_PIECES, decode_keeping_pieces
from ..errors import CodeGemmaError
from .transport import Endpoint, ServerError, ServerUnavailable, request_json



class ServerTokenizer:
    """The subset of runtime.tokenizer.Tokenizer that kernel code uses, answered by the server."""

    def __init__(self, endpoint: Endpoint, model: str):
        self._endpoint, self._model = endpoint, model
        self._dialect: str | None = None
        self._pieces: dict[str, int | None] = {}
        with_bos = self._raw("", add_special=True)
        self.bos_id = with_bos[0] if with_bos else -1
        eos = self.piece_to_id("<eos>")
        self.eos_id = -1 if eos is None else eos

    def _raw(self, text: str, add_special: bool) -> list[int]:
        for dialect in ([self._dialect] if self._dialect else ["llama-cpp-python", "openai", "llama.cpp"]):
            try:
                tokens = self._tokenize(dialect, text, add_special)
            except ServerUnavailable:
                raise
            except ServerError as e:
                if e.status in (404, 405, 422) and self._dialect is None:
                    continue  # not this server's route: try the next
                raise
            self._dialect = dialect
            return tokens
        raise CodeGemmaError(f"the server at {self._endpoint.display} has no tokenize route (tried "
                             f"/extras/tokenize and /tokenize): chat prompts and token counts need one")

    def _tokenize(self, dialect: str, text: str, add_special: bool) -> list[int]:
        root = self._endpoint.root
        if dialect == "llama-cpp-python":
            tokens = request_json(self._endpoint, "POST", f"{root}/extras/tokenize",
                                  {"model": self._model, "input": text})["tokens"]
            # It always adds <bos>; drop it when not wanted (the empty text gives exactly [<bos>]).
            if not add_special and tokens and text and tokens[0] == getattr(self, "bos_id", None):
                tokens = tokens[1:]
            elif not add_special and not text:
                tokens = []
            return [int(t) for t in tokens]
        body = {"model": self._model, "prompt": text, "add_special_tokens": add_special} if dialect == "openai" \
            else {"content": text, "add_special": add_special, "parse_special": True}
        return [int(t) for t in request_json(self._endpoint, "POST", f"{root}/tokenize", body)["tokens"]]

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        ids = self._raw(text, add_special=False)
        return ([self.bos_id] if add_bos and self.bos_id >= 0 else []) + ids

    def piece_to_id(self, piece: str) -> int | None:
        """The id of a control piece such as <start_of_turn>, or None when the text is not one token."""
        if piece not in self._pieces:
            ids = self._raw(piece, add_special=False)
            self._pieces[piece] = ids[0] if len(ids) == 1 else None
        return self._pieces[piece]

    def decode(self, ids: list[int]) -> str:
        root = self._endpoint.root
        if self._dialect is None:
            self._raw("", add_special=True)
        if self._dialect == "llama-cpp-python":
            return request_json(self._endpoint, "POST", f"{root}/extras/detokenize",
                                {"model": self._model, "tokens": list(ids)})["text"]
        if self._dialect == "openai":
            return request_json(self._endpoint, "POST", f"{root}/detokenize",
                                {"model": self._model, "tokens": list(ids)})["prompt"]
        return request_json(self._endpoint, "POST", f"{root}/detokenize", {"tokens": list(ids)})["content"]

    def decode_prompt(self, ids: list[int]) -> str:
        """Prompt ids (a chat prompt built from pieces) back to text the server tokenizes the same way.

        Detokenizers drop control tokens, so the runs between them are decoded and the pieces written
        back as text; the leading <bos> is left out, the server adds its own.
        """
        if ids and ids[0] == self.bos_id:
            ids = ids[1:]
        control = {self.piece_to_id(p): p for p in (*CONTROL_PIECES, "<eos>")}
        control.pop(None, None)
        return decode_keeping_pieces(ids, self.decode, control)
