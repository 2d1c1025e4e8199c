"""The GGUF loader against files written the way llama.cpp's converter writes them.

Each tiny config gets random parameters, is written with `gguf_writer.write_gguf` (split
projections, norms stored as 1 + scale, llama.cpp's metadata keys) and loaded back: the config,
every parameter and the logits must come back unchanged. That covers the +1 on norms, the
splitting/fusing of the q/k/v and gate/up matrices, and the metadata -> config mapping.
Bad files must fail with a CheckpointError that names the file and the problem.
"""

from __future__ import annotations

import dataclasses

import gguf
import numpy as np
import pytest
from gguf_writer import BOS_ID, EOS_ID, TINY_CONFIGS, TINY_IDS, UNK_ID, gguf_tensors, write_gguf

import jupyter_codegemma.backends.local.checkpoints as checkpoints
from jupyter_codegemma.backends.local import config as configs
from jupyter_codegemma.backends.local.checkpoints import WeightsCache, detect_format, load_checkpoint
from jupyter_codegemma.backends.local.checkpoints.gguf import SUPPORTED_ARCHITECTURES, load_gguf
from jupyter_codegemma.backends.local.config import GemmaConfig
from jupyter_codegemma.backends.errors import CheckpointError
from jupyter_codegemma.backends.local.model import Transformer, init_params
from jupyter_codegemma.backends.local.sampler import Sampler

CONFIGS, IDS = TINY_CONFIGS, TINY_IDS
CACHE_LEN = 16


def _flat(tree, prefix=()) -> dict[tuple[str, ...], np.ndarray]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) or hasattr(value, "items"):
            out.update(_flat(value, prefix + (key,)))
        else:
            out[prefix + (key,)] = np.asarray(value)
    return out


def _logits(config: GemmaConfig, params) -> np.ndarray:
    return Sampler(Transformer(config), params, CACHE_LEN).forward_logits(IDS)


def assert_same_config(loaded: GemmaConfig, original: GemmaConfig) -> None:
    """Every field equal; floats to float32 precision (GGUF stores metadata floats as float32,
    so norm_eps = 1e-6 comes back as 9.99999997e-07)."""
    for field in dataclasses.fields(GemmaConfig):
        got, want = getattr(loaded, field.name), getattr(original, field.name)
        if isinstance(want, float) and isinstance(got, float):
            assert got == pytest.approx(want, rel=1e-6), field.name
        else:
            assert got == want, field.name


def assert_clean_error(excinfo: pytest.ExceptionInfo, path, *phrases: str) -> None:
    """A CheckpointError naming the file and the problem, with no chained traceback."""
    err = excinfo.value
    assert type(err) is CheckpointError
    message = str(err)
    assert str(path) in message and err.path == str(path)
    assert message.startswith(f"cannot load model from {path}: ")
    for phrase in phrases:
        assert phrase in message, (phrase, message)
    assert err.__cause__ is None
    assert err.__context__ is None or err.__suppress_context__


# ------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", params=list(CONFIGS))
def model_file(request, tmp_path_factory):
    """(config, original params, path of its GGUF file), one per tiny config."""
    config = CONFIGS[request.param]()
    params = init_params(config, seed=len(request.param))
    path = tmp_path_factory.mktemp(request.param) / f"{config.name}.gguf"
    write_gguf(path, config, params)
    return config, params, path


@pytest.fixture(scope="module")
def mqa(tmp_path_factory):
    """The Gemma 1 MQA model, its file and the file's bytes, for the error tests."""
    config = configs.tiny_gemma1_mqa()
    params = init_params(config, seed=0)
    path = tmp_path_factory.mktemp("mqa") / "model.gguf"
    write_gguf(path, config, params)
    return config, params, path, path.read_bytes()


# ------------------------------------------------------------------------------------- round trip


def test_writer_matches_llama_cpp_layout(model_file):
    """The file holds what llama.cpp's converter writes: split projections with dims reversed,
    norms as 1 + scale, the architecture's metadata keys."""
    config, params, path = model_file
    reader = gguf.GGUFReader(path)
    arch = config.architecture
    assert reader.fields["general.architecture"].contents() == arch
    assert reader.fields[f"{arch}.block_count"].contents() == config.num_layers
    assert reader.fields[f"{arch}.attention.head_count_kv"].contents() == config.num_kv_heads
    assert (f"{arch}.attention.sliding_window" in reader.fields) == (arch != "gemma")
    assert ("gemma2.attn_logit_softcapping" in reader.fields) == (arch == "gemma2")
    tensors = {t.name: t for t in reader.tensors}
    assert set(tensors) == set(gguf_tensors(config, params))
    q = tensors["blk.0.attn_q.weight"]
    assert list(q.shape) == [config.embed_dim, config.num_heads * config.head_dim]  # fastest dim first
    assert ("blk.0.post_ffw_norm.weight" in tensors) == config.use_post_ffw_norm
    assert ("blk.0.attn_q_norm.weight" in tensors) == config.use_qk_norm
    scale = np.asarray(params["final_norm"]["scale"])
    np.testing.assert_allclose(tensors["output_norm.weight"].data, 1.0 + scale, rtol=0, atol=1e-7)


def test_round_trip(model_file, tmp_path, monkeypatch):
    config, params, path = model_file
    checkpoint = load_gguf(path)
    assert checkpoint.format == "gguf" and checkpoint.source == str(path)
    assert_same_config(checkpoint.config, config)

    original, loaded = _flat(params), _flat(checkpoint.params)
    assert loaded.keys() == original.keys()
    for key, want in original.items():
        assert loaded[key].shape == want.shape, key
        assert loaded[key].dtype == np.float32, key
        np.testing.assert_allclose(loaded[key], want, rtol=0, atol=1e-6, err_msg="/".join(key))

    tok = checkpoint.tokenizer
    assert (tok.vocab_size, tok.bos_id, tok.eos_id, tok.unk_id, tok.pad_id) == (config.vocab_size, BOS_ID, EOS_ID, UNK_ID, 0)

    want_logits = _logits(config, params)
    got_logits = _logits(checkpoint.config, checkpoint.params)
    assert want_logits.shape == (len(IDS), config.vocab_size)
    np.testing.assert_allclose(got_logits, want_logits, rtol=1e-5, atol=1e-5)

    # Through load_checkpoint: the first load converts and fills the cache, the second reads it.
    cache = WeightsCache(tmp_path / "cache")
    first = load_checkpoint(path, cache=cache)
    assert first.sha256 and cache.has(first.sha256)

    def no_gguf(_path):
        raise AssertionError("the second load should come from the weights cache")

    monkeypatch.setattr(checkpoints, "load_gguf", no_gguf)
    second = load_checkpoint(path, cache=cache)
    assert second.config == first.config
    assert second.sha256 == first.sha256 and second.format == "gguf" and second.source == str(path)
    assert second.tokenizer.serialized() == first.tokenizer.serialized()
    a, b = _flat(first.params), _flat(second.params)
    assert a.keys() == b.keys() == original.keys()
    for key in a:
        assert b[key].dtype == a[key].dtype and np.array_equal(a[key], b[key]), key


def test_quantized_tensor(mqa, tmp_path):
    config, params, _, _ = mqa
    name = "blk.0.ffn_up.weight"  # [hidden_dim, embed_dim] = [128, 64]: rows of two Q8_0 blocks
    want = gguf_tensors(config, params)[name]
    path = tmp_path / "q8.gguf"
    write_gguf(path, config, params, quantize={name: gguf.GGMLQuantizationType.Q8_0})
    stored = {t.name: t for t in gguf.GGUFReader(path).tensors}
    assert stored[name].tensor_type == gguf.GGMLQuantizationType.Q8_0
    assert stored["blk.0.ffn_gate.weight"].tensor_type == gguf.GGMLQuantizationType.F32

    checkpoint = load_gguf(path)
    got = np.asarray(checkpoint.params["layer_0"]["mlp"]["gate_up"]["w"][config.hidden_dim:])
    assert got.shape == want.shape and got.dtype == np.float32
    # Q8_0: per block of 32, d = max|x| / 127 (stored as float16), x ~ d * round(x / d).
    blocks_want, blocks_got = want.reshape(-1, 32), got.reshape(-1, 32)
    d = np.abs(blocks_want).max(axis=1, keepdims=True) / 127
    error = np.abs(blocks_got - blocks_want)
    assert np.all(error <= 0.5 * d * (1 + 2**-10 * 127) + 1e-7)
    assert error.max() > 0  # it really was quantized
    # The other half of the fused matrix and the other tensors are untouched.
    np.testing.assert_allclose(checkpoint.params["layer_0"]["mlp"]["gate_up"]["w"][:config.hidden_dim],
                               np.asarray(params["layer_0"]["mlp"]["gate_up"]["w"][:config.hidden_dim]),
                               rtol=0, atol=1e-6)
    ref, quant = _logits(config, params), _logits(checkpoint.config, checkpoint.params)
    assert 0 < np.abs(quant - ref).max() < 0.05 * np.abs(ref).max()  # ~1% here


# ------------------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    path = tmp_path / "nope.gguf"
    with pytest.raises(CheckpointError) as e:
        load_gguf(path)
    assert_clean_error(e, path, "no such file")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, cache=WeightsCache(tmp_path / "cache"))
    assert_clean_error(e, path, "no such file")


def test_directory(tmp_path):
    with pytest.raises(CheckpointError) as e:
        load_gguf(tmp_path)
    assert_clean_error(e, tmp_path, "is a directory")
    with pytest.raises(CheckpointError) as e:
        detect_format(tmp_path)
    assert_clean_error(e, tmp_path, "is a directory", "give a .gguf file")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path, cache=WeightsCache(tmp_path / "cache"))
    assert_clean_error(e, tmp_path, "is a directory")


def test_not_gguf(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_text("this is a text file, not a model\n")
    with pytest.raises(CheckpointError) as e:
        load_gguf(path)
    assert_clean_error(e, path, "not a GGUF file")
    with pytest.raises(CheckpointError) as e:
        detect_format(path)
    assert_clean_error(e, path, "expected a GGUF file")


def test_empty_file(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError) as e:
        load_gguf(path)
    assert_clean_error(e, path, "not a GGUF file")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, cache=WeightsCache(tmp_path / "cache"))
    assert_clean_error(e, path, "empty")


@pytest.mark.parametrize("keep", [
    pytest.param(lambda n: n - 1, id="last-byte"),
    pytest.param(lambda n: n - 1000, id="last-1000-bytes"),
    pytest.param(lambda n: n // 2, id="half"),
    pytest.param(lambda n: 4, id="magic-only"),
    pytest.param(lambda n: 20, id="in-header"),
    pytest.param(lambda n: 200, id="in-metadata"),
])
def test_truncated(mqa, tmp_path, keep):
    *_, data = mqa
    path = tmp_path / "model.gguf"
    path.write_bytes(data[:keep(len(data))])
    with pytest.raises(CheckpointError) as e:
        load_gguf(path)
    assert_clean_error(e, path, "truncated")


def test_truncated_through_load_checkpoint(mqa, tmp_path):
    *_, data = mqa
    path = tmp_path / "model.gguf"
    path.write_bytes(data[: len(data) // 2])
    cache = WeightsCache(tmp_path / "cache")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, cache=cache)
    assert_clean_error(e, path, "truncated")
    assert not list((tmp_path / "cache").glob("weights/*"))  # nothing half-converted was kept


@pytest.mark.parametrize("override", [{"arch_override": "llama"}, {"metadata_overrides": {"general.architecture": None}}],
                         ids=["llama", "no-architecture"])
def test_unsupported_architecture(mqa, tmp_path, override):
    config, params, _, _ = mqa
    path = write_gguf(tmp_path / "model.gguf", config, params, **override)
    with pytest.raises(CheckpointError) as e:
        load_gguf(path)
    assert_clean_error(e, path, "unsupported architecture", ", ".join(SUPPORTED_ARCHITECTURES))
    if "arch_override" in override:
        assert "'llama'" in str(e.value)


@pytest.mark.parametrize("tensor", ["blk.0.ffn_up.weight", "blk.1.attn_k.weight", "token_embd.weight",
                                    "output_norm.weight"])
def test_missing_tensor(mqa, tmp_path, tensor):
    config, params, _, _ = mqa
    path = write_gguf(tmp_path / "model.gguf", config, params, drop_tensors=[tensor])
    with pytest.raises(CheckpointError) as e:
        load_gguf(path)
    assert_clean_error(e, path, f"tensor {tensor} is missing")


def test_missing_qk_norm_tensor(tmp_path):
    config = configs.tiny_gemma3()
    params = init_params(config, seed=3)
    path = write_gguf(tmp_path / "model.gguf", config, params, drop_tensors=["blk.5.attn_k_norm.weight"])
    with pytest.raises(CheckpointError) as e:
        load_gguf(path)
    assert_clean_error(e, path, "tensor blk.5.attn_k_norm.weight is missing", "gemma3")


@pytest.mark.parametrize("key", ["block_count", "embedding_length", "attention.head_count", "feed_forward_length"])
def test_missing_metadata(mqa, tmp_path, key):
    config, params, _, _ = mqa
    path = write_gguf(tmp_path / "model.gguf", config, params, metadata_overrides={f"gemma.{key}": None})
    with pytest.raises(CheckpointError) as e:
        load_gguf(path)
    assert_clean_error(e, path, f"metadata key gemma.{key} is missing")


@pytest.mark.parametrize("overrides", [{"gemma.block_count": "two"}, {"gemma.attention.head_count_kv": 3}],
                         ids=["string-block-count", "heads-not-divisible"])
def test_invalid_metadata(mqa, tmp_path, overrides):
    config, params, _, _ = mqa
    path = write_gguf(tmp_path / "model.gguf", config, params, metadata_overrides=overrides)
    with pytest.raises(CheckpointError) as e:
        load_gguf(path)
    assert_clean_error(e, path, "the metadata does not describe a valid model")


@pytest.mark.parametrize("overrides, tensor", [
    ({"gemma.attention.head_count": 8}, "blk.0.attn_q.weight"),
    ({"gemma.attention.head_count_kv": 2}, "blk.0.attn_k.weight"),
    ({"gemma.feed_forward_length": 64}, "blk.0.ffn_gate.weight"),
    ({"gemma.embedding_length": 32}, "token_embd.weight"),
], ids=["head_count", "head_count_kv", "feed_forward_length", "embedding_length"])
def test_metadata_disagrees_with_tensors(mqa, tmp_path, overrides, tensor):
    config, params, _, _ = mqa
    path = write_gguf(tmp_path / "model.gguf", config, params, metadata_overrides=overrides)
    with pytest.raises(CheckpointError) as e:
        load_gguf(path)
    assert_clean_error(e, path, f"tensor {tensor} has shape", "metadata implies")


def test_missing_vocabulary(mqa, tmp_path):
    config, params, _, _ = mqa
    path = write_gguf(tmp_path / "model.gguf", config, params, metadata_overrides={"tokenizer.ggml.tokens": None})
    with pytest.raises(CheckpointError) as e:
        load_gguf(path)
    assert_clean_error(e, path, "tokenizer", "tokenizer.ggml.tokens")


def test_detect_format(mqa, tmp_path):
    *_, path, _ = mqa
    assert detect_format(path) == "gguf"
    missing = tmp_path / "missing.gguf"
    with pytest.raises(CheckpointError) as e:
        detect_format(missing)
    assert_clean_error(e, missing, "no such file or directory")
