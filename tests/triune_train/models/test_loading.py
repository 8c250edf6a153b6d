import json
import shutil
from pathlib import Path

import pytest

from triune_train.models.families import ModelError
from triune_train.models.loading import load_policy


@pytest.mark.parametrize(("family", "frame"), [("qwen2_5_vl", "pixel"), ("qwen3_vl", "norm1000")])
def test_tiny_path_builds_then_loads(tmp_path: Path, family: str, frame: str) -> None:
    policy = load_policy(f"tiny:{family}", tiny_dir=tmp_path / "base_model", seed=3)
    assert policy.family.name == family and policy.family.box_frame == frame
    assert json.loads((tmp_path / "base_model" / "triune_tiny.json").read_text())["seed"] == 3
    tok = policy.tokenizer
    assert tok.convert_ids_to_tokens(list(policy.vision_token_ids)) == [
        "<|vision_start|>",
        "<|vision_end|>",
        "<|vision_pad|>",
        "<|image_pad|>",
        "<|video_pad|>",
    ]
    assert tok.convert_ids_to_tokens(list(policy.eos_token_ids)) == ["<|im_end|>", "<|endoftext|>"]
    assert tok.decode([policy.neutral_token_id]) == " "
    assert policy.image_token_id == policy.model.config.image_token_id
    assert policy.patch_size == policy.family.patch_size and tok.padding_side == "left"
    assert not policy.model.training


def test_tiny_path_needs_a_folder() -> None:
    with pytest.raises(ModelError, match="needs a folder to build into"):
        load_policy("tiny:qwen2_5_vl")


def test_missing_folder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist") as e:
        load_policy(str(tmp_path / "nope"))
    assert "\n" not in str(e.value)


def test_unreachable_hub_id_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError, match="cannot load the Hub model 'no-such-org/no-such-model'") as e:
        load_policy("no-such-org/no-such-model")
    assert "\n" not in str(e.value)


def test_a_text_only_model_is_refused_before_loading_weights(tmp_path: Path) -> None:
    from transformers import Qwen2Config

    Qwen2Config(hidden_size=64, num_hidden_layers=1, num_attention_heads=2, vocab_size=300).save_pretrained(
        tmp_path
    )
    with pytest.raises(ModelError, match="model type 'qwen2' has no vision tower"):
        load_policy(str(tmp_path))


def test_processor_and_model_patch_sizes_must_agree(tmp_path: Path, tiny_model_dirs: dict[str, Path]) -> None:
    folder = shutil.copytree(tiny_model_dirs["qwen2_5_vl"], tmp_path / "m")
    config = json.loads((folder / "processor_config.json").read_text())
    config["image_processor"]["patch_size"] = 16
    (folder / "processor_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="processor patch size 16 != vision tower patch size 14"):
        load_policy(str(folder))


def test_a_folder_in_the_hub_layout_loads(tmp_path: Path, tiny_model_dirs: dict[str, Path]) -> None:
    # Hub checkpoints keep the image processor in preprocessor_config.json and the chat template in
    # chat_template.json, with no processor_config.json: the images-only processor must read that too.
    policy = load_policy(str(tiny_model_dirs["qwen2_5_vl"]))
    hub = tmp_path / "hub"
    policy.model.save_pretrained(hub)
    policy.processor.image_processor.save_pretrained(hub)
    policy.tokenizer.save_pretrained(hub)
    (hub / "chat_template.json").write_text(json.dumps({"chat_template": policy.processor.chat_template}))
    for name in ("processor_config.json", "chat_template.jinja"):
        (hub / name).unlink(missing_ok=True)
    assert (hub / "preprocessor_config.json").exists()
    again = load_policy(str(hub))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}]
    render = again.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert render == policy.processor.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    assert again.processor.image_processor.to_dict() == policy.processor.image_processor.to_dict()
