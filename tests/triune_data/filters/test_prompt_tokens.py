"""prompt_tokens with a tiny tokenizer built offline: hand-computed text and image token counts."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.triune_data.filters._rows import context, outcome, rows, sample, with_null
from triune_data.errors import RecipeError
from triune_data.filters.prompt_tokens import PromptTokens, image_tokens, processor_limits
from triune_data.types import Message

QUESTION = "<image>What is 2 + 2?"


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's tokenizer (trained here, nothing downloaded) with a Qwen2-VL image processor."""
    from transformers import Qwen2VLImageProcessorPil

    from triune_train.models.tiny import build_tokenizer

    folder = tmp_path_factory.mktemp("tok") / "tiny"
    build_tokenizer(316, default_system=None).save_pretrained(folder)
    Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=28 * 28 * 1280).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def question_tokens(tokenizer_dir: Path) -> tuple[int, int]:
    """(plain, templated) token counts of QUESTION without its placeholder, counted directly."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    text = QUESTION.replace("<image>", "")
    templated = tok.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )
    return len(tok(text, add_special_tokens=False)["input_ids"]), len(
        tok(templated, add_special_tokens=False)["input_ids"]
    )


@pytest.mark.parametrize(
    ("size", "tokens"),
    [
        ((1000, 500), 18 * 36),  # 1000×500 -> 1008×504: 36 × 18 merged patches
        ((28, 28), 2 * 2),  # under min_pixels (56²): scaled up to 56×56
        ((4000, 4000), 35 * 35),  # over max_pixels: scaled down to 980×980
        ((640, 480), 17 * 23),  # 644×476
        ((0, 480), None),
        ((6000, 20), None),  # aspect ratio over 200
    ],
)
def test_image_tokens(size: tuple[int, int], tokens: int | None) -> None:
    assert image_tokens(*size, factor=28, min_pixels=56 * 56, max_pixels=28 * 28 * 1280) == tokens


def test_prompt_tokens_counts_text_and_images(
    tmp_path: Path, tokenizer_dir: Path, question_tokens: tuple
) -> None:
    plain, templated = question_tokens
    ctx = context(tokenizer_dir.parent)
    batch = rows(
        sample("one", sizes=[(1000, 500)]),
        sample("two", sizes=[(1000, 500), (28, 28)]),
        sample("none", sizes=[]),
        sample("bad", sizes=[(0, 480)]),
    )
    one = templated + 648 + 2
    two = templated + 648 + 2 + 4 + 2
    filt = PromptTokens(tokenizer="tiny", max_tokens=one)  # relative to the recipe folder
    assert outcome(filt.apply(batch, ctx)) == [
        (False, None),
        (True, f"{two} tokens (text {templated} + images {648 + 2 + 4 + 2})"),
        (False, None),
        (True, "an image size the processor cannot resize (a side <= 0, aspect over 200)"),
    ]
    bare = PromptTokens(
        tokenizer=str(tokenizer_dir), chat_template=False, image_marker_tokens=0, max_tokens=1
    )
    assert outcome(bare.apply(batch[:3], ctx)) == [
        (True, f"{plain + 648} tokens (text {plain} + images 648)"),
        (True, f"{plain + 652} tokens (text {plain} + images 652)"),
        (True, f"{plain} tokens (text {plain} + images 0)"),
    ]


def test_prompt_tokens_limits_from_processor_and_params(tokenizer_dir: Path, question_tokens: tuple) -> None:
    templated = question_tokens[1]
    ctx = context(tokenizer_dir.parent)
    batch = rows(sample("a", sizes=[(1000, 500)]))
    verdict = PromptTokens(tokenizer="tiny", max_tokens=1, image_marker_tokens=0).apply(batch, ctx)
    assert verdict.facts["limits"] == {
        "min_pixels": 3136,
        "max_pixels": 1003520,
        "patch_size": 14,
        "merge_size": 2,
    }
    # a 256-pixel budget per side: 1000×500 -> 336×168 (12 × 6 tokens)
    small = PromptTokens(tokenizer="tiny", max_tokens=1, image_marker_tokens=0, max_pixels=256 * 256)
    assert outcome(small.apply(batch, ctx))[0][1] == f"{templated + 72} tokens (text {templated} + images 72)"


def test_prompt_tokens_null_and_multi_message_prompts(tokenizer_dir: Path, question_tokens: tuple) -> None:
    plain, _ = question_tokens
    ctx = context(tokenizer_dir.parent)
    two_turns = [Message("system", "What is 2 + 2?"), Message("user", QUESTION)]
    batch = with_null(rows(sample("a", sizes=[]), sample("b", sizes=[], prompt=two_turns)), "prompt")
    filt = PromptTokens(tokenizer="tiny", chat_template=False, max_tokens=1)
    assert outcome(filt.apply(batch, ctx)) == [
        (False, None),
        (True, f"{2 * plain} tokens (text {2 * plain} + images 0)"),
    ]


def test_prompt_tokens_bad_tokenizer_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecipeError, match=r"^prompt_tokens: cannot load tokenizer '.*empty'") as info:
        PromptTokens(tokenizer="empty").apply(rows(sample()), context(tmp_path))
    assert "\n" not in str(info.value)


def test_processor_limits_reads_attributes_or_size() -> None:
    legacy = SimpleNamespace(min_pixels=100, max_pixels=200, patch_size=16, merge_size=2)
    sized = SimpleNamespace(size={"shortest_edge": 10, "longest_edge": 20})

    assert processor_limits(legacy) == {
        "min_pixels": 100,
        "max_pixels": 200,
        "patch_size": 16,
        "merge_size": 2,
    }
    assert processor_limits(sized) == {"min_pixels": 10, "max_pixels": 20}
    assert processor_limits(None) == {}
