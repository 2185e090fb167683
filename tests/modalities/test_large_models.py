"""Large transformer encoders on a budget: a LoRA adapter trains alone and is all a checkpoint of a pretrained base
stores, bf16 autocast keeps the policy's log-probabilities close to float32's, and activation checkpointing gives
the gradients of a plain backward pass. Each option comes from a scenario file and is refused where it cannot apply."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from himo.envs import keys
from himo.envs.builtin.beacon import BeaconEnv
from himo.modalities.text import TransformerEncoderConfig
from himo.modalities.base import EncoderContext
from himo.scenarios.build import build_env, build_policy
from himo.scenarios.checkpoint import load_checkpoint, seed_everything
from himo.scenarios.errors import ScenarioError
from himo.scenarios.evaluate import evaluate
from himo.scenarios.loader import load, to_yaml
from himo.scenarios.run import SCENARIO_FILE, Trainer, resume, train
from himo.scenarios.run_checkpoints import CHECKPOINT_FOLDER, checkpoint_files

SHORT = ["env.num_envs=2", "train.frames=512", "train.frames_per_batch=256", "log.checkpoint_every=512"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small BERT and its tokenizer saved as a pretrained model folder is (its words: the beacon's missions')."""
    folder = tmp_path_factory.mktemp("pretrained")
    env = build_env(load("beacon", ["env.num_envs=1"]))
    words = sorted(word for word in env.tokenizers["mission"].get_vocab() if not word.startswith("["))
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    BertTokenizer(vocab={word: index for index, word in enumerate(vocabulary)}).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocabulary), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


def text_with(pretrained: Path, options: str) -> str:
    return f"modalities.text={{key: mission, encoder: transformer, pretrained: {pretrained}, {options}}}"


def encoder_parameters(policy: torch.nn.Module, modality: str = "text") -> dict[str, torch.Tensor]:
    """A copy of every parameter of the policy's encoder of ``modality``, by name."""
    return {
        name: parameter.detach().clone()
        for name, parameter in policy.named_parameters()
        if f".encoders.{modality}." in name
    }


def test_only_the_adapter_and_the_head_train(pretrained: Path, tmp_path: Path) -> None:
    scenario = load("beacon", [*SHORT, text_with(pretrained, "adapter: {rank: 4}"), f"log.dir={tmp_path}"])
    trainer = Trainer(scenario, tmp_path / "run")
    before = encoder_parameters(trainer.policy)
    optimised = {id(parameter) for learner in trainer.learners.values() for parameter in learner.workers.optimizer.parameters}
    trainer.run(progress=False)
    after = encoder_parameters(trainer.policy)
    names = {id(parameter): name for name, parameter in trainer.policy.named_parameters()}
    trainable = [name for name in before if "lora_" in name or ".head." in name]
    base = [name for name in before if name not in trainable]
    assert base and trainable
    assert all(torch.equal(before[name], after[name]) for name in base), "the base stayed bit-identical"
    assert any(not torch.equal(before[name], after[name]) for name in trainable if "lora_B" in name)
    text_optimised = sorted(names[identity] for identity in optimised if ".encoders.text." in names[identity])
    assert text_optimised == sorted(trainable), "the optimiser holds the adapter and the head, nothing of the base"


@pytest.mark.parametrize(
    ("modality", "override"),
    [
        ("image", "modalities.image={key: view, encoder: vit, adapter: {rank: 2}, checkpointing: true}"),
        ("audio", "modalities.audio={key: sound, encoder: ast, adapter: {rank: 2}, checkpointing: true}"),
    ],
    ids=["vit", "ast"],
)
def test_vision_and_audio_transformers_train_only_their_adapter_and_head(modality: str, override: str, tmp_path: Path) -> None:
    scenario = load("beacon", [*SHORT, override, f"log.dir={tmp_path}"])
    trainer = Trainer(scenario, tmp_path / "run")
    before = encoder_parameters(trainer.policy, modality)
    trainer.run(progress=False)
    after = encoder_parameters(trainer.policy, modality)
    trainable = [name for name in before if "lora_" in name or ".head." in name]
    base = [name for name in before if name not in trainable]
    assert base and any("lora_B" in name for name in trainable)
    assert all(torch.equal(before[name], after[name]) for name in base), "the base stayed bit-identical"
    assert any(not torch.equal(before[name], after[name]) for name in trainable if "lora_B" in name)


def test_a_checkpoint_of_a_pretrained_base_stores_the_adapter_and_reopens(pretrained: Path, tmp_path: Path) -> None:
    scenario = load("beacon", [*SHORT, text_with(pretrained, "adapter: {rank: 4}"), f"log.dir={tmp_path}"])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / SCENARIO_FILE).write_text(to_yaml(scenario))  # what himo eval reopens
    trainer = Trainer(scenario, tmp_path / "run")
    trainer.run(progress=False)
    stored = load_checkpoint(checkpoint_files(tmp_path / "run" / CHECKPOINT_FOLDER)[0])["policy"]
    text_keys = [key for key in stored if ".encoders.text." in key]
    assert text_keys and all("lora_" in key or ".head." in key for key in text_keys), "no base weight is stored"
    rebuilt = build_policy(scenario, build_env(scenario))
    rebuilt.load_state_dict(stored)  # strict: the base comes from the pretrained folder
    trained, reopened = encoder_parameters(trainer.policy), encoder_parameters(rebuilt)
    assert all(torch.equal(trained[name], reopened[name]) for name in trained)
    assert evaluate(tmp_path / "run", episodes=2).episodes == 2


def test_a_run_with_an_adapter_on_a_pretrained_base_resumes_exactly(
    pretrained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def scenario(folder: Path):
        options = ["train.frames=1024", "log.checkpoint_every=512", f"log.dir={folder}"]
        return load("beacon", [*SHORT, *options, text_with(pretrained, "adapter: {rank: 4}")])

    reference = train(scenario(tmp_path / "whole"), progress=False)
    original, calls = BeaconEnv._step, [0]

    def dies_in_the_third_batch(self, tensordict):
        calls[0] += 1
        if calls[0] == 2 * 128 + 10:  # 128 steps of 2 envs per 256-frame batch
            raise RuntimeError("crash")
        return original(self, tensordict)

    monkeypatch.setattr(BeaconEnv, "_step", dies_in_the_third_batch)
    with pytest.raises(RuntimeError, match="crash"):
        train(scenario(tmp_path / "cut"), progress=False)
    monkeypatch.undo()
    (folder,) = (tmp_path / "cut").iterdir()
    resumed = resume(folder, progress=False)  # the base rebuilt from its folder, the adapter from the checkpoint
    assert resumed.frames == 1024
    assert resumed.returns and resumed.returns == [(frames, value) for frames, value in reference.returns if frames > 512]


def test_a_checkpoint_of_a_built_base_keeps_it(tmp_path: Path) -> None:
    scenario = load("beacon", [*SHORT, "modalities.text.adapter={rank: 2}", "modalities.text.layers=1"])
    policy = build_policy(scenario, build_env(scenario))
    text_keys = [key for key in policy.state_dict() if ".encoders.text." in key]
    assert any("base_layer" in key for key in text_keys), "a base built from a config has no other source"


def log_probabilities(precision: str, state: dict[str, torch.Tensor] | None) -> tuple[torch.Tensor, dict]:
    scenario = load("beacon", ["env.num_envs=4", f"train.precision={precision}", "modalities.image.encoder=vit"])
    seed_everything(0)
    env = build_env(scenario)
    policy = build_policy(scenario, env)
    if state is not None:
        policy.load_state_dict(state)
    torch.manual_seed(1)
    acted = policy(env.reset())
    return acted.get(("agents", keys.LOG_PROB)), policy.state_dict()


def test_bf16_log_probabilities_stay_close_to_float32() -> None:
    reference, state = log_probabilities("fp32", None)
    autocast, _ = log_probabilities("bf16", state)
    assert autocast.dtype == torch.float32
    assert not torch.equal(autocast, reference), "the encoders ran in bfloat16"
    assert torch.allclose(autocast, reference, atol=0.05), (autocast - reference).abs().max()


def test_checkpointing_gives_the_same_gradients() -> None:
    spec = build_env(load("beacon", ["env.num_envs=2"])).full_observation_spec[("agents", "observation", "mission")]
    env = build_env(load("beacon", ["env.num_envs=2"]))
    context = EncoderContext(("mission",), ("embedding",), spec, env.tokenizers["mission"])
    ids = spec[keys.INPUT_IDS].rand()
    mask = torch.ones_like(ids, dtype=torch.bool)
    gradients = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        encoder = TransformerEncoderConfig(key="mission", layers=2, checkpointing=checkpointing, cache=False).build(context)
        encoder.module(ids, mask).square().sum().backward()
        gradients.append({name: parameter.grad for name, parameter in encoder.named_parameters()})
    assert gradients[0].keys() == gradients[1].keys()
    for name, gradient in gradients[0].items():
        assert torch.allclose(gradient, gradients[1][name], atol=1e-6), name


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("modalities.image.adapter={rank: 4}", r"modalities\.image.*adapter applies to the transformer encoders"),
        ("modalities.audio.checkpointing=true", r"modalities\.audio.*checkpointing applies to the transformer encoders"),
        ("modalities.text={key: mission, encoder: transformer, frozen: true, adapter: {}}", r"remove frozen: true"),
        ("train.precision=fp16", r"train\.precision"),
    ],
    ids=["lora on a cnn", "checkpointing a spectrogram cnn", "a frozen adapter", "an unknown precision"],
)
def test_an_option_that_cannot_apply_is_refused(override: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        load("beacon", [override])


def test_unknown_target_modules_are_named() -> None:
    scenario = load("beacon", ["env.num_envs=1", "modalities.text.adapter={target_modules: [attention]}"])
    with pytest.raises(ScenarioError, match=r"modalities\.text.*\['attention'\] not in the model; its linear layers"):
        build_policy(scenario, build_env(scenario))
