"""The server's tokenizer, for the kernel code that counts tokens (the context budgets of explain, fix
and chat: RemoteEngine.count_tokens) or turns prompt ids back into text (decode_prompt).

Completions, `%%codegemma` and chats (the server's chat route applies the template) never need it.
Servers name the route differently; the first that answers sensibly is remembered:
  llama-cpp-python  POST /extras/tokenize {"input"} -> {"tokens"}  (adds <bos>, parses control pieces)
  vLLM              POST /tokenize {"model", "prompt", "add_special_tokens"} -> {"tokens", ...}
  llama.cpp server  POST /tokenize {"content", "add_special", "parse_special"} -> {"tokens"}
and the matching /detokenize. A route that is missing (404, 405, 501), refuses the fields (400, 422)
or answers no tokens for a word (llama.cpp's /tokenize given vLLM's fields) is not this server's: the
next is tried. With none (Ollama) NoTokenizeRoute says so, and the engine estimates counts instead.
Every answer is checked: a reply of another shape is a ServerError that says what came.
"""

from __future__ import annotations

from ..chat import CONTROL_PIECES, decode_keeping_pieces
from .transport import Endpoint, ServerError, ServerUnavailable, describe, request_json

DIALECTS = ("llama-cpp-python", "openai", "llama.cpp")
NOT_THIS_ROUTE = (400, 404, 405, 422, 501)  # while looking for the server's route
PROBE = "def"  # a word every tokenizer makes at least one token of


class NoTokenizeRoute(ServerError):
    """The server has no tokenize route that this client knows (Ollama has none)."""


class ServerTokenizer:
    """The subset of runtime.tokenizer.Tokenizer that kernel code uses, answered by the server."""

    def __init__(self, endpoint: Endpoint, model: str):
        self._endpoint, self._model = endpoint, model
        self._pieces: dict[str, int | None] = {}
        self.bos_id = -1
        self._dialect = self._find_route()
        with_bos = self._tokenize(self._dialect, "", add_special=True)
        self.bos_id = with_bos[0] if with_bos else -1
        eos = self.piece_to_id("<eos>")
        self.eos_id = -1 if eos is None else eos

    def _find_route(self) -> str:
        for dialect in DIALECTS:
            try:
                tokens = self._tokenize(dialect, PROBE, add_special=True)
            except ServerUnavailable:
                raise
            except ServerError as e:
                if e.status in NOT_THIS_ROUTE:
                    continue
                raise
            if tokens:
                return dialect
        raise NoTokenizeRoute(f"the server at {self._endpoint.display} has no tokenize route (tried "
                              f"/extras/tokenize and /tokenize)", 404)

    def _tokenize(self, dialect: str, text: str, add_special: bool) -> list[int]:
        root = self._endpoint.root
        if dialect == "llama-cpp-python":
            path, body = f"{root}/extras/tokenize", {"model": self._model, "input": text}
        elif dialect == "openai":
            path, body = f"{root}/tokenize", {"model": self._model, "prompt": text, "add_special_tokens": add_special}
        else:
            path, body = f"{root}/tokenize", {"content": text, "add_special": add_special, "parse_special": True}
        tokens = _field(request_json(self._endpoint, "POST", path, body), "tokens", list, self._endpoint.where(path))
        if not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in tokens):
            bad = next(t for t in tokens if not (isinstance(t, int) and not isinstance(t, bool) and t >= 0))
            raise ServerError(f"{self._endpoint.where(path)} answered with a token list holding {describe(bad)} "
                              f"({bad!r:.40}), not token ids")
        if dialect == "llama-cpp-python" and not add_special:
            # It always adds <bos>; drop it when not wanted (the empty text gives exactly [<bos>]).
            if not text:
                return []
            if tokens and tokens[0] == self.bos_id:
                return tokens[1:]
        return tokens

    def _raw(self, text: str, add_special: bool) -> list[int]:
        return self._tokenize(self._dialect, text, add_special)

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
        if self._dialect == "llama-cpp-python":
            path, body, key = f"{root}/extras/detokenize", {"model": self._model, "tokens": list(ids)}, "text"
        elif self._dialect == "openai":
            path, body, key = f"{root}/detokenize", {"model": self._model, "tokens": list(ids)}, "prompt"
        else:
            path, body, key = f"{root}/detokenize", {"tokens": list(ids)}, "content"
        return _field(request_json(self._endpoint, "POST", path, body), key, str, self._endpoint.where(path))

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


def _field(answer, key: str, kind: type, where: str):
    """answer[key], checked to be a `kind` (a list of token ids, a text)."""
    value = answer.get(key) if isinstance(answer, dict) else None
    if not isinstance(value, kind):
        what = "a list of token ids" if kind is list else "a text"
        raise ServerError(f"{where} answered with {describe(answer)}, not {what} in '{key}': is the route "
                          f"this client knows by that name another server's?")
    return value
