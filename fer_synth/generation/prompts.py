"""Prompt templates and word pools (data files in ``prompts/``) -> the prompt and seed of image i.

Prompt i of a class and its diffusion seed are a pure function of (run seed, class, i): a numpy
``SeedSequence([seed, class_index, i])`` seeds one generator that first draws the image seed, then
fills the template's slots. So any image can be regenerated alone, a run can be sharded or resumed
in any order, and runs with different seeds share no image.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fer_synth.core import classes
from fer_synth.core.errors import FerError

DEFAULT_FILE = "default.yaml"
_SLOT = re.compile(r"\{([^{}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NUMBERED = re.compile(r"^(.*?)(\d+)$")
_TOP_KEYS = {"template", "negative", "pools", "classes"}
#: The largest image seed: torch generators take 64-bit seeds; 63 bits keep it a positive int64.
MAX_IMAGE_SEED = 2**63 - 1


class PromptFileError(FerError):
    """A prompt file that cannot be used; the message names the file, the line and the problem."""


@dataclass(frozen=True)
class Prompt:
    """One image's prompt: everything needed to regenerate it."""

    emotion: str
    index: int
    seed: int  # the diffusion seed of this image
    text: str
    negative: str


@dataclass
class PromptSet:
    """A template, a negative prompt and word lists, per class and shared."""

    template: str
    negative: str
    pools: dict[str, list[str]]
    classes: dict[str, dict[str, Any]]  # class -> {"emotion": str, list name: [str, ...]}
    source: str = "<memory>"
    slots: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.slots = [m.group(1) for m in _SLOT.finditer(self.template)]

    @property
    def digest(self) -> str:
        """A hash of the content (not of the file's layout): two runs with equal digests draw equal prompts."""
        blob = json.dumps(
            {"template": self.template, "negative": self.negative, "pools": self.pools, "classes": self.classes},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def lists_for(self, emotion: str) -> dict[str, list[str]]:
        """The word lists that fill the template for ``emotion`` (the class's own lists win over the shared pools)."""
        if emotion not in self.classes:
            raise PromptFileError(
                f"{self.source}: no entry for class {emotion!r} under 'classes:'; it has "
                f"{', '.join(self.classes) or 'none'}"
            )
        entry = self.classes[emotion]
        lists = dict(self.pools)
        lists.update({k: v for k, v in entry.items() if isinstance(v, list)})
        lists["emotion"] = [entry["emotion"]]
        return lists

    def prompt(self, seed: int, emotion: str, index: int) -> Prompt:
        """The prompt and diffusion seed of image ``index`` of ``emotion`` in a run seeded with ``seed``."""
        if seed < 0 or index < 0:
            raise FerError(f"seed and index must be >= 0 (got seed={seed}, index={index})")
        emotion = classes.VOCABULARY.resolve(emotion)
        lists = self.lists_for(emotion)
        # The vocabulary's positions never change (FER2013's seven first), so a class keeps its seeds in any list.
        rng = np.random.default_rng(np.random.SeedSequence([seed, classes.VOCABULARY.index(emotion), index]))
        image_seed = int(rng.integers(0, MAX_IMAGE_SEED, dtype=np.int64))
        values: dict[str, str] = {}
        for base, names in _group_slots(self.slots, lists).items():
            pool = lists[base]
            picks = rng.choice(len(pool), size=len(names), replace=False)
            values.update({name: pool[int(p)] for name, p in zip(names, picks)})
        text = _SLOT.sub(lambda m: values[m.group(1)], self.template)
        return Prompt(emotion=emotion, index=index, seed=image_seed, text=text, negative=self.negative)

    def prompts(self, seed: int, emotion: str, n: int, start: int = 0) -> list[Prompt]:
        """Prompts ``start .. start+n-1`` of ``emotion``."""
        return [self.prompt(seed, emotion, i) for i in range(start, start + n)]


def _group_slots(slots: list[str], lists: dict[str, list[str]]) -> dict[str, list[str]]:
    """Slot names grouped by the list they draw from, in template order; a repeated slot draws once."""
    groups: dict[str, list[str]] = {}
    for name in slots:
        base = _base(name, lists)
        if name not in groups.setdefault(base, []):
            groups[base].append(name)
    return groups


def _base(name: str, lists: dict[str, list[str]]) -> str:
    if name in lists:
        return name
    numbered = _NUMBERED.match(name)
    return numbered.group(1) if numbered and numbered.group(1) in lists else name


# --- reading a prompt file ----------------------------------------------------------------------


def default_prompts_path() -> Path:
    """``prompts/default.yaml``: beside the package in a source or editable checkout, else where the
    wheel installs it (``<prefix>/share/fer-synth/prompts``, a setuptools data-files mapping)."""
    candidates = [
        Path(__file__).resolve().parents[2] / "prompts" / DEFAULT_FILE,
        Path(sysconfig.get_path("data")) / "share" / "fer-synth" / "prompts" / DEFAULT_FILE,
        Path(sys.prefix) / "share" / "fer-synth" / "prompts" / DEFAULT_FILE,
    ]
    for path in candidates:
        if path.is_file():
            return path
    raise PromptFileError(
        f"the default prompt file is missing (looked in {', '.join(str(p.parent) for p in candidates)}); "
        f"reinstall fer-synth or pass --prompts FILE"
    )


def load_prompts(path: str | Path | None = None) -> PromptSet:
    """Read and check a prompt file (the default one when ``path`` is None)."""
    path = Path(path).expanduser() if path is not None else default_prompts_path()
    if not path.is_file():
        raise PromptFileError(f"prompt file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise PromptFileError(
            f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); save it as UTF-8 YAML"
        ) from None
    return parse_prompts(text, source=str(path))


def parse_prompts(text: str, source: str = "<string>") -> PromptSet:
    """Parse the YAML text of a prompt file; every problem is reported with its line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise PromptFileError(f"{where}: not valid YAML: {getattr(e, 'problem', None) or e}") from None

    def fail(node: yaml.Node | None, problem: str) -> PromptFileError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return PromptFileError(f"{source}{line}: {problem}")

    def mapping(node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise fail(node, f"{what} must be a mapping (key: value lines)")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise fail(key, f"{what}: keys must be plain names")
            if key.value in out:
                raise fail(key, f"{what}: {key.value!r} appears twice")
            out[key.value] = (key, value)
        return out

    def string(node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            raise fail(node, f"{what} must be a non-empty string")
        return " ".join(str(node.value).split())

    def words(node: yaml.Node, what: str) -> list[str]:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            raise fail(node, f"{what} must be a non-empty list")
        seen: dict[str, int] = {}
        out = []
        for item in node.value:
            word = string(item, f"an entry of {what}")
            if word.lower() in seen:
                raise fail(item, f"{what}: {word!r} is listed twice (first on line {seen[word.lower()]})")
            seen[word.lower()] = item.start_mark.line + 1
            out.append(word)
        return out

    if root is None:
        raise PromptFileError(f"{source}: the file is empty; it needs template, negative, pools and classes")
    top = mapping(root, "the file")
    for key, (knode, _) in top.items():
        if key not in _TOP_KEYS:
            raise fail(knode, f"unknown key {key!r}; valid: {', '.join(sorted(_TOP_KEYS))}")
    for key in ("template", "classes"):
        if key not in top:
            raise fail(root, f"missing {key!r}")
    template_node = top["template"][1]
    template = string(template_node, "template")
    negative = string(top["negative"][1], "negative") if "negative" in top else ""
    pools = {}
    if "pools" in top:
        for name, (knode, vnode) in mapping(top["pools"][1], "pools").items():
            if not _NAME.match(name):
                raise fail(knode, f"pool name {name!r} must be a plain identifier")
            pools[name] = words(vnode, f"pool {name!r}")
    class_entries: dict[str, dict[str, Any]] = {}
    for name, (knode, vnode) in mapping(top["classes"][1], "classes").items():
        try:
            cls = classes.VOCABULARY.resolve(name)
        except classes.UnknownClassError as e:
            raise fail(knode, str(e)) from None
        if cls in class_entries:
            raise fail(knode, f"class {cls!r} is given twice (as an alias)")
        fields = mapping(vnode, f"class {cls!r}")
        entry: dict[str, Any] = {
            "emotion": string(fields["emotion"][1], f"{cls}.emotion") if "emotion" in fields else cls
        }
        for field_name, (fk, fv) in fields.items():
            if field_name == "emotion":
                continue
            if not _NAME.match(field_name):
                raise fail(fk, f"list name {field_name!r} must be a plain identifier")
            entry[field_name] = words(fv, f"{cls}.{field_name}")
        class_entries[cls] = entry

    prompt_set = PromptSet(template=template, negative=negative, pools=pools, classes=class_entries, source=source)
    if not prompt_set.slots:
        raise fail(template_node, "the template has no {slot}; every prompt would be the same")
    for cls in class_entries:
        lists = prompt_set.lists_for(cls)
        for base, names in _group_slots(prompt_set.slots, lists).items():
            if not _NAME.match(base):
                raise fail(template_node, f"template slot {{{base}}} is not a plain name")
            if base not in lists:
                raise fail(
                    template_node,
                    f"template slot {{{names[0]}}} has no list for class {cls!r}; add '{base}:' under pools "
                    f"or under classes.{cls}",
                )
            if len(names) > len(lists[base]):
                raise fail(
                    template_node,
                    f"template uses {len(names)} distinct {{{base}N}} slots but {cls}'s {base!r} list has only "
                    f"{len(lists[base])} entries",
                )
    return prompt_set
