"""The kernel-side settings: traitlets on one `CodeGemma` configurable.

    %config CodeGemma.temperature = 0.2          # in a notebook
    %codegemma set temperature=0.2               # the same
    c.CodeGemma.model = "/models/codegemma-2b.gguf"   # in ipython_config.py
"""

from __future__ import annotations

from traitlets import Bool, Enum, Float, Int, Unicode
from traitlets.config import Configurable


class CodeGemma(Configurable):
    """CodeGemma in this kernel: which model, how it generates, what is switched on."""

    model = Unicode("", help="A model file (GGUF); empty for the default model (Gemma 3 270M).").tag(config=True)
    dtype = Enum(("float32", "bfloat16"), "float32",
                 help="Weights and activations (float32 is the fastest on CPU).").tag(config=True)
    context_len = Int(4096, min=64, help="KV cache length: the longest prompt plus output, in tokens.").tag(config=True)
    max_new_tokens = Int(256, min=1, help="The most tokens %%codegemma writes.").tag(config=True)
    temperature = Float(0.0, min=0.0, help="%%codegemma sampling temperature; 0 is greedy.").tag(config=True)
    seed = Int(0, help="%%codegemma sampling seed (used when temperature > 0).").tag(config=True)
    context_cells = Int(3, min=0, help="How many previous code cells %%codegemma shows the model.").tag(config=True)
    mode = Enum(("auto", "line", "block"), "auto",
                help="Completion mode when a request names none: one line, a block, or chosen from the cursor."
                ).tag(config=True)
    completions_enabled = Bool(True, help="Answer inline-completion requests from the editor.").tag(config=True)
    hints_enabled = Bool(True, help="Give exercise hints (teachers switch this off for exams).").tag(config=True)

    def model_label(self) -> str:
        return self.model or "Gemma 3 270M (default)"
