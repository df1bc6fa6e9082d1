"""The sentence-transformers training arguments of a run: the configuration fields mapped onto them by one table,
every other option passed through (and checked), and training_config.json files written before the pass-through
existed."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest

from pyterrier_hybrid.errors import UserError
from pyterrier_hybrid.training import cli
from pyterrier_hybrid.training.config import CONFIG_FILE, HybridTrainingConfig, TrainingConfigError
from pyterrier_hybrid.training.trainer_arguments import (
    CONFIG_ARGUMENTS,
    RUN_ARGUMENTS,
    TRAINER_DEFAULTS,
    parse_trainer_options,
    trainer_argument_names,
    training_arguments,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_every_argument_the_run_sets_is_an_option_of_the_installed_sentence_transformers():
    names = trainer_argument_names()
    set_by_the_run = {argument for argument, _ in CONFIG_ARGUMENTS.values()} | set(RUN_ARGUMENTS)
    assert set_by_the_run | set(TRAINER_DEFAULTS) <= names
    assert set(CONFIG_ARGUMENTS) <= {f.name for f in dataclasses.fields(HybridTrainingConfig)}


def test_the_table_maps_the_configuration_onto_the_arguments(tmp_path):
    config = HybridTrainingConfig(batch_size=16, learning_rate=1e-4, weight_decay=0.05, warmup=0.2, epochs=2.0,
                                  seed=7, logging_steps=3, save_steps=40, save_total_limit=1, eval_steps=20,
                                  early_stopping_patience=2, output_dir=str(tmp_path / "run"))
    args = training_arguments(config, evaluates=True, eval_metric="eval_loss", prompts={"anchor": "query: "})
    assert (args.per_device_train_batch_size, args.learning_rate, args.weight_decay) == (16, 1e-4, 0.05)
    assert (args.warmup_steps, args.num_train_epochs, args.max_steps, args.seed) == (0.2, 2.0, -1, 7)
    assert (args.logging_steps, args.save_steps, args.save_total_limit, args.eval_steps) == (3, 40, 1, 20)
    assert args.optim == "adamw_torch_fused" and args.lr_scheduler_type == "linear" and args.report_to == []
    assert args.output_dir == str(tmp_path / "run" / "checkpoints") and args.prompts == {"anchor": "query: "}
    assert args.load_best_model_at_end and args.metric_for_best_model == "eval_loss"
    loop = training_arguments(dataclasses.replace(config, fused_optimizer=False, max_steps=5,
                                                  early_stopping_patience=None), evaluates=False,
                              eval_metric="eval_loss", prompts={})
    assert (loop.optim, loop.max_steps, loop.eval_strategy, loop.prompts) == ("adamw_torch", 5, "no", None)


def test_an_option_the_project_never_declared_reaches_the_arguments():
    config = HybridTrainingConfig(trainer_arguments={"gradient_accumulation_steps": 2, "max_grad_norm": 0.5,
                                                     "lr_scheduler_type": "cosine"})
    args = training_arguments(config, evaluates=False, eval_metric="eval_loss", prompts={})
    assert (args.gradient_accumulation_steps, args.max_grad_norm) == (2, 0.5)
    assert args.lr_scheduler_type == "cosine"  # a default of the run that may be changed


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"no_such_option": 1}, "unknown trainer argument 'no_such_option'"),
        ({"output_dir": "elsewhere"}, "output_dir is set by the run"),
        ({"batch_sampler": "no_duplicates"}, "batch_sampler is set by the run"),
        ({"per_device_train_batch_size": 4}, r"set from batch_size"),
        ({"optim": "sgd"}, r"set from fused_optimizer"),
        ({"max_grad_norm": object()}, "JSON values"),
    ],
)
def test_trainer_arguments_that_cannot_be_passed_through(arguments, message):
    with pytest.raises(TrainingConfigError, match=message):
        HybridTrainingConfig(trainer_arguments=arguments)


def test_trainer_arguments_are_saved_and_compared(tmp_path):
    config = HybridTrainingConfig(trainer_arguments={"max_grad_norm": 0.5})
    config.save(tmp_path / CONFIG_FILE)
    assert json.loads((tmp_path / CONFIG_FILE).read_text())["config"]["trainer_arguments"] == {"max_grad_norm": 0.5}
    assert HybridTrainingConfig.load(tmp_path / CONFIG_FILE) == config
    # a resumed run must pass the same arguments
    assert HybridTrainingConfig().differences(config) == {"trainer_arguments": ({}, {"max_grad_norm": 0.5})}
    hash(config)


def test_a_training_config_written_before_the_pass_through_loads():
    saved = sorted((REPO_ROOT / "benchmarks" / "results").rglob(CONFIG_FILE))
    # The committed results hold configurations written before the field existed (runs made since, in ignored model
    # folders of a working copy, have it).
    older = [path for path in saved
             if "trainer_arguments" not in json.loads(path.read_text(encoding="utf-8"))["config"]]
    assert older
    for path in older:
        assert HybridTrainingConfig.load(path).trainer_arguments == {}


def test_the_command_line_passes_undeclared_options_through():
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--gradient-accumulation-steps", "2", "--lr", "1e-4", "--max_grad_norm=0.5",
                              "--no-dataloader-pin-memory", "--batch-size", "8"])
    config = cli.config_from_args(args)
    assert config.trainer_arguments == {"gradient_accumulation_steps": 2, "max_grad_norm": 0.5,
                                        "dataloader_pin_memory": False}
    assert (config.learning_rate, config.batch_size) == (1e-4, 8)
    assert cli.config_from_args(parser.parse_args([])).trainer_arguments == {}


@pytest.mark.parametrize(
    "options, named",
    [
        (["--no-such-option", "3"], ("unrecognized arguments", "--no-such-option 3")),
        (["stray"], ("unrecognized arguments", "stray")),
        (["--max-grad-norm", "abc"], ("--max_grad_norm", "'abc'")),
        (["--output_dir", "x"], ("output_dir is set by the run",)),
        (["--learning_rate", "1e-4"], ("learning_rate is set by the run", "set from learning_rate")),
        (["--warmup_ratio", "0.1"], ("warmup_ratio is set by the run", "warmup takes a fraction")),
    ],
)
def test_undeclared_options_that_are_refused(options, named):
    with pytest.raises(UserError) as error:
        parse_trainer_options(options)
    for text in named:
        assert text in str(error.value)
