"""Text observations as token ids: a word-level tokenizer built locally from a known word list.

Environments emit text as ``input_ids`` + ``attention_mask`` in their own word vocabulary. The
tokenizer object travels with the environment (``vocabulary``) so that an encoder with its own
pretrained tokenizer can decode the ids back to text and re-tokenize them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from tokenizers import Tokenizer, decoders
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import PreTrainedTokenizerFast

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


def unknown_words(tokenizer: PreTrainedTokenizerFast, text: str) -> list[str]:
    """The words of ``text`` (as the tokenizer splits it) that are not in its vocabulary, in order, once each."""
    vocabulary = tokenizer.get_vocab()
    words = tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str(text)
    return list(dict.fromkeys(word for word, _ in words if word not in vocabulary))


def encode_texts(
    tokenizer: PreTrainedTokenizerFast, texts: Sequence[str], max_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``[len(texts), max_length]`` (int64) and attention mask (bool), padded and truncated."""
    encoded = tokenizer(
        list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt"
    )
    return encoded["input_ids"], encoded["attention_mask"].bool()


def decode_ids(tokenizer: PreTrainedTokenizerFast, input_ids: torch.Tensor) -> list[str]:
    """Texts of a ``[n, length]`` batch of token ids, padding dropped."""
    return tokenizer.batch_decode(input_ids.tolist(), skip_special_tokens=True)
