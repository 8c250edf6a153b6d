import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from triune_train.models.families import FAMILIES, ModelError
from triune_train.models.tiny import (
    COLOURS,
    SPECIAL_TOKENS,
    TINY_FAMILIES,
    TinySpec,
    build_tiny,
    build_tokenizer,
    ensure_tiny,
    parse_tiny,
)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(400, default_system="You are a helpful assistant.")


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_saved_folder_is_a_hf_checkpoint(family: str, tiny_model_dirs: dict[str, Path]) -> None:
    folder = tiny_model_dirs[family]
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json"} <= names
    assert {"chat_template.jinja", "generation_config.json", "triune_tiny.json"} <= names
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == family
    processor = json.loads((folder / "processor_config.json").read_text())
    # the original class name, so AutoProcessor opens it where torchvision exists
    assert processor["processor_class"] == FAMILIES[family].processor_class.__name__
    assert processor["image_processor"]["patch_size"] == FAMILIES[family].patch_size
    weights = load_file(folder / "model.safetensors")
    assert 0.5e6 < sum(t.numel() for t in weights.values()) < 1e6


def test_special_tokens_follow_the_bpe_vocabulary(tokenizer) -> None:
    ids = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    assert ids == list(range(400 - len(SPECIAL_TOKENS), 400)) and len(tokenizer) == 400
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.padding_side == "left"
    assert tokenizer.decode(ids, skip_special_tokens=True) == ""


@pytest.mark.parametrize(
    "text",
    [
        "<think>\nI see a red circle.\n</think>\n<answer>red</answer>",
        "[{'bbox_2d': [12,340,56,78],'label': 'blue star'}]",
        '[{"bbox_2d": [0.5, 10, 999, 1000], "label": "green hexagon"}]',
        "The answer is \\boxed{\\frac{3}{4}}.",
        "ünïcödé, emoji 🙂, tabs\tand\x1f control bytes",
    ],
)
def test_tokenizer_round_trips_any_text(tokenizer, text: str) -> None:
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text


def test_corpus_words_are_single_tokens_and_digits_split(tokenizer) -> None:
    for word in (*COLOURS, "answer", "think", "bbox"):
        assert (
            len(tokenizer.encode(" " + word if word in COLOURS else word, add_special_tokens=False)) == 1
        ), word
    assert tokenizer.convert_ids_to_tokens(tokenizer.encode("1000", add_special_tokens=False)) == [
        "1",
        "0",
        "0",
        "0",
    ]


def test_chat_template_is_qwen_style(tokenizer) -> None:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What colour?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    own_system = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert tokenizer.apply_chat_template(own_system, tokenize=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    )


def test_qwen3_template_has_no_default_system() -> None:
    tok = build_tokenizer(300, default_system=None)
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_build_is_deterministic_and_leaves_the_global_rng_alone(tmp_path: Path) -> None:
    state = torch.get_rng_state()
    a = build_tiny(TinySpec(family="qwen3_vl", seed=5), tmp_path / "a")
    b = build_tiny(TinySpec(family="qwen3_vl", seed=5), tmp_path / "b")
    c = build_tiny(TinySpec(family="qwen3_vl", seed=6), tmp_path / "c")
    assert torch.equal(torch.get_rng_state(), state)
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()
    wa, wb, wc = (load_file(d / "model.safetensors") for d in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # no temp folders left


def test_ensure_tiny_reuses_a_matching_build_and_refuses_others(tmp_path: Path) -> None:
    spec = TinySpec(family="qwen2_5_vl", seed=1)
    out = ensure_tiny(spec, tmp_path / "m")
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert (
        ensure_tiny(spec, tmp_path / "m") == out and (out / "model.safetensors").stat().st_mtime_ns == stamp
    )
    with pytest.raises(ModelError, match="holds a different tiny model"):
        ensure_tiny(TinySpec(family="qwen2_5_vl", seed=2), out)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "precious.txt").write_text("keep me")
    with pytest.raises(ModelError, match="not a tiny model build"):
        ensure_tiny(spec, tmp_path / "other")
    assert (tmp_path / "other" / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("path", "kwargs", "error"),
    [
        ("tiny:qwen2_vl", {}, "no tiny model for 'qwen2_vl'"),
        ("tiny:llama", {}, "no tiny model for 'llama'"),
        ("tiny:qwen3_vl", {"vocab_size": 100}, "vocab_size must be at least"),
        ("tiny:qwen3_vl", {"hidden_size": 100}, "multiple of 32"),
    ],
)
def test_bad_tiny_specs(path: str, kwargs: dict, error: str) -> None:
    with pytest.raises(ModelError, match=error):
        parse_tiny(path, **kwargs)
