"""Model configurations for the Gemma family (Gemma 1 / CodeGemma, Gemma 2, Gemma 3).

One frozen dataclass describes every member of the family; the differences between
generations are switches (QK-norm, extra norms, soft-capping, sliding-window layers),
not subclasses, so the model code reads as one architecture with options.
"""

from __future__ import annotations

import dataclasses
import enum


class AttentionKind(str, enum.Enum):
    """Which keys a layer's queries may see."""

    GLOBAL = "global"  # every earlier position
    LOCAL = "local"  # only the last `sliding_window` positions


@dataclasses.dataclass(frozen=True)
class GemmaConfig:
    """Shapes and switches of one Gemma model.

    `vocab_size` is the number of rows of the embedding table as stored in the
    checkpoint (JAX CodeGemma checkpoints pad 256 000 to 256 128; GGUF trims it).
    """

    name: str
    architecture: str  # "gemma" (Gemma 1, CodeGemma), "gemma2" or "gemma3"
    num_layers: int
    vocab_size: int
    embed_dim: int
    hidden_dim: int  # width of the GeGLU feed-forward layer
    num_heads: int
    num_kv_heads: int
    head_dim: int
    attention_kinds: tuple[AttentionKind, ...]
    sliding_window: int | None = None
    rope_base_global: float = 10_000.0
    rope_base_local: float = 10_000.0
    rope_scale_global: float = 1.0  # linear position scaling (Gemma 3 4B+ use 8)
    query_scale: float = 256**-0.5
    attn_logit_softcap: float | None = None
    final_logit_softcap: float | None = None
    use_qk_norm: bool = False
    use_post_attn_norm: bool = False
    use_post_ffw_norm: bool = False
    norm_eps: float = 1e-6
    max_context: int = 8192  # the context length the model was trained for

    def __post_init__(self) -> None:
        if len(self.attention_kinds) != self.num_layers:
            raise ValueError(
                f"{self.name}: {len(self.attention_kinds)} attention kinds for {self.num_layers} layers"
            )
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"{self.name}: {self.num_heads} heads do not split into {self.num_kv_heads} KV groups")
        if AttentionKind.LOCAL in self.attention_kinds and not self.sliding_window:
            raise ValueError(f"{self.name}: local attention layers need a sliding_window")

    @property
    def is_mqa(self) -> bool:
        """True when queries and keys have different head counts (MQA or GQA)."""
        return self.num_kv_heads != self.num_heads

    def rope_base(self, layer: int) -> float:
        return self.rope_base_local if self.attention_kinds[layer] == AttentionKind.LOCAL else self.rope_base_global

    def rope_scale(self, layer: int) -> float:
        return 1.0 if self.attention_kinds[layer] == AttentionKind.LOCAL else self.rope_scale_global

    def replace(self, **changes) -> "GemmaConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["attention_kinds"] = [k.value for k in self.attention_kinds]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "GemmaConfig":
        data = dict(data)
        data["attention_kinds"] = tuple(AttentionKind(k) for k in data["attention_kinds"])
        return cls(**data)


def all_global(num_layers: int) -> tuple[AttentionKind, ...]:
    return (AttentionKind.GLOBAL,) * num_layers


def alternating_local_global(num_layers: int) -> tuple[AttentionKind, ...]:
    """Gemma 2: even layers slide, odd layers see everything."""
    return tuple(AttentionKind.LOCAL if i % 2 == 0 else AttentionKind.GLOBAL for i in range(num_layers))


def local_global_pattern(num_layers: int, period: int = 6) -> tuple[AttentionKind, ...]:
    """Gemma 3: `period - 1` sliding layers, then one global layer (5:1 for period 6)."""
    return tuple(AttentionKind.GLOBAL if (i + 1) % period == 0 else AttentionKind.LOCAL for i in range(num_layers))


def gemma1(name: str, *, num_layers: int, embed_dim: int, hidden_dim: int, num_heads: int,
           num_kv_heads: int, head_dim: int = 256, vocab_size: int = 256_000,
           max_context: int = 8192) -> GemmaConfig:
    return GemmaConfig(
        name=name, architecture="gemma", num_layers=num_layers, vocab_size=vocab_size,
        embed_dim=embed_dim, hidden_dim=hidden_dim, num_heads=num_heads, num_kv_heads=num_kv_heads,
        head_dim=head_dim, attention_kinds=all_global(num_layers), query_scale=head_dim**-0.5,
        max_context=max_context,
    )


def gemma2(name: str, *, num_layers: int, embed_dim: int, hidden_dim: int, num_heads: int,
           num_kv_heads: int, head_dim: int = 256, vocab_size: int = 256_000, sliding_window: int = 4096,
           query_scale: float | None = None, max_context: int = 8192) -> GemmaConfig:
    return GemmaConfig(
        name=name, architecture="gemma2", num_layers=num_layers, vocab_size=vocab_size,
        embed_dim=embed_dim, hidden_dim=hidden_dim, num_heads=num_heads, num_kv_heads=num_kv_heads,
        head_dim=head_dim, attention_kinds=alternating_local_global(num_layers),
        sliding_window=sliding_window, query_scale=query_scale or head_dim**-0.5,
        attn_logit_softcap=50.0, final_logit_softcap=30.0,
        use_post_attn_norm=True, use_post_ffw_norm=True, max_context=max_context,
    )


def gemma3(name: str, *, num_layers: int, embed_dim: int, hidden_dim: int, num_heads: int,
           num_kv_heads: int, head_dim: int = 256, vocab_size: int = 262_144, sliding_window: int = 512,
           rope_scale_global: float = 1.0, query_scale: float | None = None,
           max_context: int = 32_768, pattern_period: int = 6) -> GemmaConfig:
    return GemmaConfig(
        name=name, architecture="gemma3", num_layers=num_layers, vocab_size=vocab_size,
        embed_dim=embed_dim, hidden_dim=hidden_dim, num_heads=num_heads, num_kv_heads=num_kv_heads,
        head_dim=head_dim, attention_kinds=local_global_pattern(num_layers, pattern_period),
        sliding_window=sliding_window, rope_base_local=10_000.0, rope_base_global=1_000_000.0,
        rope_scale_global=rope_scale_global, query_scale=query_scale or head_dim**-0.5,
        use_qk_norm=True, use_post_attn_norm=True, use_post_ffw_norm=True, max_context=max_context,
    )


# --- presets ------------------------------------------------------------------------------------

def gemma3_270m() -> GemmaConfig:
    return gemma3("gemma3-270m", num_layers=18, embed_dim=640, hidden_dim=2048, num_heads=4,
                  num_kv_heads=1, head_dim=256)


def codegemma_2b() -> GemmaConfig:
    return gemma1("codegemma-2b", num_layers=18, embed_dim=2048, hidden_dim=16_384, num_heads=8,
                  num_kv_heads=1)


def codegemma_7b() -> GemmaConfig:
    return gemma1("codegemma-7b", num_layers=28, embed_dim=3072, hidden_dim=24_576, num_heads=16,
                  num_kv_heads=16)


def codegemma_7b_it() -> GemmaConfig:
    return codegemma_7b().replace(name="codegemma-7b-it")


# Tiny configurations with every switch of their generation turned on, for tests that compare
# against an independent implementation. Small sliding windows make long-prompt paths cheap.

def tiny_gemma1_mqa() -> GemmaConfig:
    return gemma1("tiny-gemma1-mqa", num_layers=2, embed_dim=64, hidden_dim=128, num_heads=4,
                  num_kv_heads=1, head_dim=16, vocab_size=512, max_context=256)


def tiny_gemma1_mha() -> GemmaConfig:
    return gemma1("tiny-gemma1-mha", num_layers=2, embed_dim=64, hidden_dim=128, num_heads=4,
                  num_kv_heads=4, head_dim=16, vocab_size=512, max_context=256)


def tiny_gemma2() -> GemmaConfig:
    return gemma2("tiny-gemma2", num_layers=4, embed_dim=64, hidden_dim=128, num_heads=4,
                  num_kv_heads=2, head_dim=16, vocab_size=512, sliding_window=8, max_context=256)


def tiny_gemma3() -> GemmaConfig:
    return gemma3("tiny-gemma3", num_layers=6, embed_dim=64, hidden_dim=128, num_heads=4,
                  num_kv_heads=1, head_dim=16, vocab_size=512, sliding_window=8, max_context=256)


PRESETS = {
    "gemma3-270m": gemma3_270m,
    "codegemma-2b": codegemma_2b,
    "codegemma-7b": codegemma_7b,
    "codegemma-7b-it": codegemma_7b_it,
    "tiny-gemma1-mqa": tiny_gemma1_mqa,
    "tiny-gemma1-mha": tiny_gemma1_mha,
    "tiny-gemma2": tiny_gemma2,
    "tiny-gemma3": tiny_gemma3,
}


def preset(name: str) -> GemmaConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; known presets: {', '.join(PRESETS)}") from None


def count_params(config: GemmaConfig) -> int:
    """Parameter count from the shapes alone (embedding counted once: the head is tied)."""
    d, h = config.embed_dim, config.head_dim
    attn = d * h * (config.num_heads + 2 * config.num_kv_heads) + config.num_heads * h * d
    norms = d * (2 + config.use_post_attn_norm + config.use_post_ffw_norm) + 2 * h * config.use_qk_norm
    ffw = 3 * d * config.hidden_dim
    return config.vocab_size * d + config.num_layers * (attn + ffw + norms) + d

