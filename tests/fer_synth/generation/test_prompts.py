"""Prompt files and the pure (seed, class, index) -> prompt, seed function."""

from __future__ import annotations

import glob
import json
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fer_synth.cli import main
from fer_synth.core.classes import EMOTIONS, UnknownClassError
from fer_synth.generation.prompts import PromptFileError, default_prompts_path, load_prompts, parse_prompts

ROOT = Path(__file__).resolve().parents[3]

MINIMAL = """\
template: "{context} photo, {emotion}, {word1} and {word2}"
negative: |
  line one,
  line two
pools:
  context: [close-up, headshot]
classes:
  fear:
    emotion: frightened
    word: [scared, terrified, afraid]
"""


def test_default_file_covers_every_class_and_renders_cleanly():
    prompt_set = load_prompts()
    assert set(prompt_set.classes) == set(EMOTIONS)  # FER2013's seven and FER+'s contempt
    for emotion in EMOTIONS:
        for p in prompt_set.prompts(0, emotion, 20):
            assert "{" not in p.text and "}" not in p.text
            assert prompt_set.classes[emotion]["emotion"] in p.text
            assert not re.search(r"\ba [aeiou]", p.text), p.text  # "a older" was a seed-style slip
    # The whole negative prompt, not its first line only (the seed's bug).
    assert prompt_set.negative.startswith("cartoon") and prompt_set.negative.endswith("nsfw")
    assert "\n" not in prompt_set.negative


def test_prompt_and_seed_are_a_pure_function_of_seed_class_index():
    prompt_set = load_prompts()
    run = prompt_set.prompts(0, "fear", 30)
    assert prompt_set.prompt(0, "fear", 17) == run[17]  # order-free: any index alone
    assert prompt_set.prompt(0, "afraid", 3) == run[3]  # aliases
    assert load_prompts().prompt(0, "fear", 5) == run[5]  # a fresh load, no hidden state
    assert len({p.seed for p in run}) == 30
    assert len({p.text for p in run}) > 20
    other_seed = prompt_set.prompts(1, "fear", 30)
    assert not {p.seed for p in run} & {p.seed for p in other_seed}
    other_class = prompt_set.prompts(0, "sad", 30)
    assert not {p.seed for p in run} & {p.seed for p in other_class}


def test_numbered_slots_draw_distinct_words_and_negative_keeps_every_line():
    prompt_set = parse_prompts(MINIMAL)
    assert prompt_set.negative == "line one, line two"
    for i in range(50):
        text = prompt_set.prompt(3, "fear", i).text
        first, second = re.match(r".*, frightened, (\w+) and (\w+)$", text).groups()
        assert first != second


def test_class_lists_override_shared_pools():
    text = MINIMAL.replace(
        "    word: [scared, terrified, afraid]", "    word: [scared, terrified, afraid]\n    context: [selfie]"
    )
    assert all(p.text.startswith("selfie") for p in parse_prompts(text).prompts(0, "fear", 10))


def test_a_class_missing_from_a_user_file_is_named():
    with pytest.raises(PromptFileError, match="no entry for class 'happy'.*fear"):
        parse_prompts(MINIMAL, source="mine.yaml").prompt(0, "happy", 0)


@pytest.mark.parametrize(
    "text, match",
    [
        ("template: [unclosed\n", r"x\.yaml:2: not valid YAML"),
        (MINIMAL + "extra: 1\n", r"x\.yaml:11: unknown key 'extra'"),
        (
            MINIMAL.replace("[close-up, headshot]", "[close-up, Close-up]"),
            r"x\.yaml:6: pool 'context': 'Close-up' is listed twice \(first on line 6\)",
        ),
        (MINIMAL.replace("{word2}", "{colour}"), r"x\.yaml:1: template slot \{colour\} has no list for class 'fear'"),
        (MINIMAL.replace("  fear:", "  fearsome:"), r"x\.yaml:8: unknown emotion 'fearsome'; valid: angry"),
        (MINIMAL.replace("[scared, terrified, afraid]", "[scared]"), r"2 distinct \{wordN\} slots.*only 1"),
        (
            MINIMAL.replace("  context: [close-up, headshot]", "  context: []"),
            r"x\.yaml:6: pool 'context' must be a non-empty list",
        ),
        ("classes: {}\n", r"x\.yaml:1: missing 'template'"),
        ("", r"x\.yaml: the file is empty"),
        (MINIMAL.replace("pools:", "template: again\npools:"), r"x\.yaml:5: the file: 'template' appears twice"),
    ],
)
def test_malformed_files_name_the_problem_and_line(text, match):
    with pytest.raises(PromptFileError, match=match):
        parse_prompts(text, source="x.yaml")


def test_default_file_is_shipped_in_the_wheel():
    """Source/editable checkouts read prompts/ directly; wheels get it through a data-files mapping."""
    assert default_prompts_path() == ROOT / "prompts" / "default.yaml"
    if sys.version_info < (3, 11):
        pytest.skip("tomllib")
    import tomllib

    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    shipped = [Path(p).name for pattern in mapping["share/fer-synth/prompts"] for p in glob.glob(str(ROOT / pattern))]
    assert "default.yaml" in shipped


def test_prompts_command_prints_prompts_and_seeds_without_a_model(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["prompts", "--emotion", "fear", "--n", "3", "--seed", "0", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    expected = load_prompts().prompts(0, "fear", 3)
    assert [(r["index"], r["seed"], r["prompt"]) for r in rows] == [(p.index, p.seed, p.text) for p in expected]
    text = runner.invoke(main, ["prompts", "-e", "fear,sad", "--n", "2"])
    assert text.exit_code == 0 and str(expected[1].seed) in text.output and "sad" in text.output

    bad = tmp_path / "mine.yaml"
    bad.write_text(MINIMAL.replace("{word2}", "{colour}"))
    result = runner.invoke(main, ["prompts", "-e", "fear", "--prompts", str(bad)])
    assert result.exit_code == 2 and f"{bad}:1: template slot {{colour}}" in result.output
    good = tmp_path / "good.yaml"
    good.write_text(MINIMAL)
    assert "frightened" in runner.invoke(main, ["prompts", "-e", "fear", "--prompts", str(good)]).output
    result = runner.invoke(main, ["prompts", "-e", "grumpy"])
    assert result.exit_code == 2 and "valid: angry, disgust, fear" in result.output


def test_negative_seed_is_refused():
    with pytest.raises(Exception, match="seed"):
        load_prompts().prompt(-1, "fear", 0)
    with pytest.raises(UnknownClassError):
        load_prompts().prompt(0, "grumpy", 0)
