"""A text observation's tokenizer comes from a word list, a word-list file or a local transformers tokenizer folder;
unknown words are errors naming them, and a scenario's relative paths are read from its own folder."""

from __future__ import annotations

from pathlib import Path

import gymnasium
import numpy as np
import pytest
from transformers import BertTokenizer

from himo.envs.spaces import ObservationConverter
from himo.scenarios.errors import ScenarioError
from himo.scenarios.loader import load
from himo.scenarios.run import train

SPACE = gymnasium.spaces.Dict({"instruction": gymnasium.spaces.Text(max_length=40)})


def tokenize(source: list[str] | str, texts: list[str]) -> list[list[int]]:
    converter = ObservationConverter(SPACE, text_length=8, vocabularies={"instruction": source})
    converted = converter.convert({"instruction": texts}, [len(texts)])
    return converted["instruction", "input_ids"].tolist()


def save_subword_tokenizer(folder: Path) -> Path:
    """A WordPiece tokenizer whose vocabulary spells "reddish" as "red" + "##dish", saved as transformers saves one."""
    return save_tokenizer(folder, ["go", "to", "the", "red", "blue", "lamp", "##dish"])


def save_tokenizer(folder: Path, pieces: list[str]) -> Path:
    """``folder/tokenizer``: a WordPiece tokenizer over ``pieces`` and BERT's special tokens."""
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *pieces]
    BertTokenizer(vocab={piece: index for index, piece in enumerate(vocabulary)}).save_pretrained(folder / "tokenizer")
    return folder / "tokenizer"


def test_a_word_list_file_tokenizes_like_the_same_list(tmp_path: Path) -> None:
    words = ["go", "to", "the", "red", "blue", "lamp"]
    (tmp_path / "words.txt").write_text("go to the\nred blue lamp\n")
    texts = ["go to the red lamp", "go to the blue lamp"]
    assert tokenize(str(tmp_path / "words.txt"), texts) == tokenize(words, texts)


def test_a_tokenizer_folder_spells_words_from_its_pieces(tmp_path: Path) -> None:
    folder = save_subword_tokenizer(tmp_path)
    [ids] = tokenize(str(folder), ["go to the reddish lamp"])
    tokenizer = BertTokenizer.from_pretrained(folder)
    assert tokenizer.convert_ids_to_tokens(ids[:7]) == ["[CLS]", "go", "to", "the", "red", "##dish", "lamp"]


@pytest.mark.parametrize("kind", ["word-list file", "tokenizer folder"])
def test_a_word_it_cannot_spell_is_an_error_naming_it(kind: str, tmp_path: Path) -> None:
    (tmp_path / "words.txt").write_text("go to the red lamp")
    source = tmp_path / "words.txt" if kind == "word-list file" else save_subword_tokenizer(tmp_path)
    with pytest.raises(ValueError, match=r"'instruction': \['yellow'\] in 'go to the yellow lamp'"):
        tokenize(str(source), ["go to the yellow lamp"])


def empty_file(path: Path) -> Path:
    path.write_text("")
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda folder: folder / "absent.txt", "neither a word-list file nor a tokenizer folder"),
        (lambda folder: folder, "no transformers tokenizer in"),
        (lambda folder: empty_file(folder / "empty.txt"), "is empty"),
    ],
    ids=["missing path", "folder without a tokenizer", "empty word list"],
)
def test_a_source_that_is_not_a_tokenizer_is_refused(make, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        tokenize(str(make(tmp_path)), ["go"])


MODULE = '''
import gymnasium
import numpy as np


class Said(gymnasium.Env):
    """Reward 1 for the action the instruction names; two steps."""

    def __init__(self):
        self.observation_space = gymnasium.spaces.Dict({"instruction": gymnasium.spaces.Text(max_length=20)})
        self.action_space = gymnasium.spaces.Discrete(2)

    def _observation(self):
        self.target = int(self.np_random.integers(2))
        return {"instruction": ["press left", "press right"][self.target]}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.count = 0
        return self._observation(), {}

    def step(self, action):
        reward = float(int(action) == self.target)
        self.count += 1
        return self._observation(), reward, self.count >= 2, False, {}


def make():
    return Said()
'''


@pytest.mark.parametrize("source", ["words.txt", "tokenizer"])
def test_a_scenario_names_its_tokenizer_relative_to_its_file(source: str, tmp_path: Path) -> None:
    (tmp_path / "said.py").write_text(MODULE)
    (tmp_path / "words.txt").write_text("press left right")
    save_tokenizer(tmp_path, ["press", "left", "right"])
    scenario_file = tmp_path / "said.yaml"
    scenario_file.write_text(
        "name: said\n"
        f"env: {{id: python/said:make, python_path: [.], num_envs: 2, kwargs: {{vocabularies: {{instruction: {source}}}}}}}\n"
        "modalities: {text: {key: instruction, encoder: transformer, layers: 1, hidden: 16, heads: 2}}\n"
        "train: {frames: 64, frames_per_batch: 32}\n"
        f"log: {{dir: {tmp_path / 'runs'}}}\n"
    )
    scenario = load(scenario_file)
    assert scenario.env.kwargs["vocabularies"]["instruction"] == str(tmp_path / source)
    assert train(scenario, progress=False).frames == 64


def test_a_scenario_naming_a_missing_word_list_gets_a_located_error(tmp_path: Path) -> None:
    (tmp_path / "said.py").write_text(MODULE)
    scenario_file = tmp_path / "said.yaml"
    scenario_file.write_text(
        "name: said\n"
        "env: {id: python/said:make, python_path: [.], kwargs: {vocabularies: {instruction: nowhere.txt}}}\n"
        "modalities: {text: {key: instruction, encoder: transformer}}\n"
    )
    with pytest.raises(ScenarioError, match="nowhere.txt is neither a word-list file nor a tokenizer folder"):
        train(load(scenario_file), progress=False)
