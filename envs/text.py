"""Text observations as token ids, by the tokenizer a text observation names.

A text observation's tokenizer (``env.kwargs.vocabularies.<observation>``) is one of:

* a list of words: a word-level tokenizer built here over them;
* the path of a file: a word list, words separated by spaces or lines;
* the path of a folder holding a transformers tokenizer (``save_pretrained``'s files), loaded
  without any download.

Environments emit text as ``input_ids`` + ``attention_mask``. The tokenizer object travels with the
environment so that an encoder with its own pretrained tokenizer can decode the ids back to text
and re-tokenize them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

PAD_TOKEN = "[PAD]"
UNKNOWN_TOKEN = "[UNK]"


def build_word_tokenizer(words: Iterable[str]) -> PreTrainedTokenizerFast:
    """Build a word-level tokenizer over ``words`` (id 0 is padding, id 1 is unknown).

    Words are split on whitespace and punctuation, so ``"ball,"`` tokenizes as ``"ball" ","``;
    decoding joins words with spaces and re-attaches punctuation, so text round-trips.
    """
    vocabulary = {PAD_TOKEN: 0, UNKNOWN_TOKEN: 1}
    for word in words:
        vocabulary.setdefault(word, len(vocabulary))
    model = Tokenizer(WordLevel(vocabulary, unk_token=UNKNOWN_TOKEN))
    model.pre_tokenizer = Whitespace()
    # WordPiece's decoder with cleanup turns "ball , then" back into "ball, then".
    model.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    return PreTrainedTokenizerFast(tokenizer_object=model, pad_token=PAD_TOKEN, unk_token=UNKNOWN_TOKEN)


def text_tokenizer(source: Sequence[str] | str, name: str) -> PreTrainedTokenizerBase:
    """The tokenizer of text observation ``name``, from a word list, a word-list file or a tokenizer folder."""
    if not isinstance(source, str):
        return build_word_tokenizer(source)
    path = Path(source)
    if path.is_file():
        words = path.read_text(encoding="utf-8").split()
        if not words:
            raise ValueError(f"text observation {name!r}: the word list {path} is empty")
        return build_word_tokenizer(words)
    if not path.is_dir():
        raise ValueError(f"text observation {name!r}: {path} is neither a word-list file nor a tokenizer folder")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as error:
        raise ValueError(f"text observation {name!r}: no transformers tokenizer in {path} ({error})") from None
    if tokenizer.pad_token is None:
        raise ValueError(f"text observation {name!r}: the tokenizer in {path} has no padding token; set its pad_token")
    return tokenizer


def unknown_words(tokenizer: PreTrainedTokenizerBase, text: str) -> list[str]:
    """The words of ``text`` (as the tokenizer splits it) it can only encode as its unknown token, once each.

    A word-level tokenizer knows only its list; a subword tokenizer spells most words from pieces, and only those
    with no spelling are unknown.
    """
    pre_tokenizer = tokenizer.backend_tokenizer.pre_tokenizer if tokenizer.is_fast else None
    words = [word for word, _ in pre_tokenizer.pre_tokenize_str(text)] if pre_tokenizer else text.split()
    unknown_id = tokenizer.unk_token_id
    if unknown_id is None:
        return []
    return list(dict.fromkeys(
        word for word in words if unknown_id in tokenizer(word, add_special_tokens=False)["input_ids"]
    ))


def encode_texts(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``[len(texts), max_length]`` (int64) and attention mask (bool), padded and truncated."""
    encoded = tokenizer(
        list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt"
    )
    return encoded["input_ids"], encoded["attention_mask"].bool()


def decode_ids(tokenizer: PreTrainedTokenizerBase, input_ids: torch.Tensor) -> list[str]:
    """Texts of a ``[n, length]`` batch of token ids, padding dropped."""
    return tokenizer.batch_decode(input_ids.tolist(), skip_special_tokens=True)
