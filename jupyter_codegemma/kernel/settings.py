"""The kernel-side settings: traitlets on one `CodeGemma` configurable.

    %config CodeGemma.temperature = 0.2          # in a notebook
    %codegemma set temperature=0.2               # the same
    c.CodeGemma.model = "/models/codegemma-2b.gguf"   # in ipython_config.py
"""

from __future__ import annotations

import difflib
import os
import re

from traitlets import Bool, Enum, Float, Int, Unicode, default
from traitlets.config import Configurable

# JupyterHub deployments point every kernel at the class's server through the environment
# (c.Spawner.environment), with no per-user configuration: see docs/deployment.md.
SERVER_URL_ENV = "CODEGEMMA_SERVER_URL"
SERVER_MODEL_ENV = "CODEGEMMA_SERVER_MODEL"
ALLOW_INSECURE_HTTP_ENV = "CODEGEMMA_ALLOW_INSECURE_HTTP"  # "1", "true" or "yes"
# The repetition penalty of the default model where `repetition_penalty` is None, by request kind: on
# where bench/generation.py measured that it helps (%%codegemma: fewer runaway answers, more that do what
# was asked); off for explanations (no fewer repeated blocks, longer and vaguer answers), for fixes and
# chat (not measured; a fix copies the failing cell, which a penalty works against), and for other
# models and servers (not measured; a server such as vLLM applies it to the whole prompt).
DEFAULT_REPETITION_PENALTY = {"generate": 1.1}
DEFAULT_MODEL_LABEL = "Gemma 3 270M"  # the default model's name, as its model card writes it


class CodeGemma(Configurable):
    """CodeGemma in this kernel: which model, how it generates, what is switched on."""

    model = Unicode("", help="A model file (GGUF); empty for the default model (Gemma 3 270M).").tag(config=True)
    dtype = Enum(("auto", "float32", "bfloat16", "int8"), "auto",
                 help="Weight dtype. auto: int8 weights with native kernels on x86-64 CPUs with AVX2 and FMA "
                 "or better (AVX-512 VNNI, AMX), float32 elsewhere on CPU, bfloat16 on GPU/TPU.").tag(config=True)
    context_len = Int(4096, min=64, help="KV cache length: the longest prompt plus output, in tokens.").tag(config=True)
    max_new_tokens = Int(256, min=1, help="The most tokens %%codegemma, fix and chat write.").tag(config=True)
    explain_max_new_tokens = Int(160, min=1, help="The most tokens an explanation (%codegemma explain, "
                                 "%%codegemma --explain) writes.").tag(config=True)
    temperature = Float(0.0, min=0.0, help="%%codegemma sampling temperature; 0 is greedy.").tag(config=True)
    seed = Int(0, help="%%codegemma sampling seed (used when temperature > 0).").tag(config=True)
    repetition_penalty = Float(None, allow_none=True, min=1.0,
                               help="Make the tokens of the last 64 less likely (llama.cpp's repeat_penalty; 1.0 "
                               "is off) in %%codegemma, explain, fix and chat. None: 1.1 for %%codegemma with the "
                               "default model, where it helps (bench/generation.py); off otherwise. Editor "
                               "completions never use it.").tag(config=True)
    context_cells = Int(3, min=0, help="How many previous code cells %%codegemma shows the model.").tag(config=True)
    mode = Enum(("auto", "line", "block"), "auto",
                help="Completion mode when a request names none: one line, a block, or chosen from the cursor."
                ).tag(config=True)
    completions_enabled = Bool(True, help="Answer inline-completion requests from the editor.").tag(config=True)
    kernel_context = Bool(True, help="Tell the model, in each completion's prompt, what the names near the cursor "
                          "hold in this kernel (keys, columns, attributes, signatures, shapes; read without running "
                          "any of your code) and keep suggestions to names that exist where that is known."
                          ).tag(config=True)
    hints_enabled = Bool(True, help="Give exercise hints (teachers switch this off for exams).").tag(config=True)
    generation_enabled = Bool(True, help="Answer %%codegemma cells and %codegemma explain, fix and chat "
                              "(exam mode, `%codegemma disable`, switches them off with the rest).").tag(config=True)
    exercise_editor = Enum(("auto", "codemirror", "textarea"), "auto",
                           help="The exercise widgets' code editor: the labextension's CodeMirror view, a plain "
                           "Textarea, or auto (CodeMirror where the labextension is installed).").tag(config=True)
    server_url = Unicode(help="An OpenAI-compatible completions server (vLLM, llama.cpp, Ollama) to use instead "
                         "of a model in this kernel; empty = the local model. Default: $CODEGEMMA_SERVER_URL."
                         ).tag(config=True)
    server_model = Unicode(help="The server's name for the model; empty = the first it lists. "
                           "Default: $CODEGEMMA_SERVER_MODEL.").tag(config=True)
    api_key_env = Unicode("CODEGEMMA_API_KEY", help="The environment variable holding the server's API key "
                          "(the key itself is never stored in settings or notebooks).").tag(config=True)
    server_fim = Enum(("auto", "yes", "no"), "auto", help="Whether the server's model takes FIM prompts; auto: "
                      "CodeGemma base models do (from the model's name).").tag(config=True)
    allow_insecure_http = Bool(help="Send the API key over plain http:// to a server that is not on this machine "
                               "(anyone on the network between can read it; use https:// where you can). "
                               "Default: $CODEGEMMA_ALLOW_INSECURE_HTTP.").tag(config=True)

    @default("server_url")
    def _server_url_default(self) -> str:
        return os.environ.get(SERVER_URL_ENV, "")

    @default("server_model")
    def _server_model_default(self) -> str:
        return os.environ.get(SERVER_MODEL_ENV, "")

    @default("allow_insecure_http")
    def _allow_insecure_http_default(self) -> bool:
        return os.environ.get(ALLOW_INSECURE_HTTP_ENV, "").strip().lower() in ("1", "true", "yes")

    def penalty_for(self, kind: str) -> float:
        """The repetition penalty of a request of `kind` ("generate" for %%codegemma, "explain", "fix",
        "chat"): the setting, or where it is None, what was measured for that kind with the default
        model (off with any other model or a server)."""
        if self.repetition_penalty is not None:
            return self.repetition_penalty
        default_model = not self.model and not self.server_url
        return DEFAULT_REPETITION_PENALTY.get(kind, 1.0) if default_model else 1.0

    def model_label(self, loaded: str = "") -> str:
        """The model's name as the status bar, `%codegemma status` and messages show it. `loaded` is the
        name the loaded backend gives (a GGUF's general.name, a server's model id); before a load the
        settings say. The default model is "Gemma 3 270M" both while it loads and once loaded (its GGUF
        calls itself "Gemma 3 270m")."""
        if loaded:
            return display_model_name(loaded)
        if self.server_url:
            return f"{self.server_model or 'the model'} at {self.server_url}"
        return self.model or DEFAULT_MODEL_LABEL


def display_model_name(name: str) -> str:
    """A model's name with its size written the usual way: "Gemma 3 270m" -> "Gemma 3 270M",
    "CodeGemma 7b it" -> "CodeGemma 7B it". Only a size that is a word of its own changes, so ids
    ("gemma-3-270m", "codegemma-2b") and paths stay as they are."""
    return re.sub(r"(?<![\w./-])(\d+(?:\.\d+)?)([mbk])(?![\w./-])", lambda m: m[1] + m[2].upper(), name)


class SettingError(ValueError):
    """A `%codegemma set` the settings cannot take; its message is the one line to show."""


def set_from_text(settings: CodeGemma, key: str, text: str):
    """`%codegemma set KEY=VALUE`: set one setting from its text; a SettingError names what is wrong
    (an unknown key with the nearest names, a value out of its range or of the wrong kind)."""
    traits = settings.traits(config=True)
    trait = traits.get(key)
    if trait is None:
        near = difflib.get_close_matches(key, traits, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(near)}?" if near else f"the settings are {', '.join(sorted(traits))}"
        raise SettingError(f"there is no setting {key!r}: {hint}")
    if type(trait).__name__ == "Bool":  # `set kernel_context off` reads as a person says it
        text = {"on": "true", "yes": "true", "off": "false", "no": "false"}.get(text.strip().lower(), text)
    try:
        value = trait.from_string(text)
        setattr(settings, key, value)
    except Exception:  # traitlets' own text names its classes; say what the setting takes instead
        raise SettingError(f"{key} takes {_what_it_takes(trait)}, not {text!r}") from None
    return getattr(settings, key)


def _what_it_takes(trait) -> str:
    kind = type(trait).__name__
    if kind == "Enum":
        return "one of " + ", ".join(map(str, trait.values))
    if kind == "Bool":
        return "true or false (on or off)"
    lower = getattr(trait, "min", None)
    noun = {"Int": "a whole number", "Float": "a number"}.get(kind, "text")
    return f"{noun} of at least {lower}" if lower is not None else noun
