"""Which weights of the encoder train: frozen word embeddings, frozen lower layers, or LoRA adapters.

Training fewer weights keeps more of what the starting model knows and makes a step cheaper (no weight gradients,
and for frozen layers no backward pass below the first trained one). LoRA adapters are peft's, injected into the
transformer in place; they are merged into the weights before
the model is saved, so the saved folder is a plain sentence-transformers model that loads without peft.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from ..config import HybridTrainingConfig

__all__ = ["add_lora_adapter", "encoder_layer_count", "freeze_lower_layers", "freeze_word_embeddings",
           "load_lora_checkpoint", "lora_resuming_trainer", "merge_lora_adapter", "transformer_layers", "uses_lora"]


def freeze_word_embeddings(model: SentenceTransformer) -> int:
    """Stop training the word-embedding matrix of the model's transformer; returns the number of frozen weights."""
    transformer = model[0]
    auto_model = getattr(transformer, "auto_model", None)
    if auto_model is None or not hasattr(auto_model, "get_input_embeddings"):
        raise ValueError(f"cannot find the word embeddings of {type(transformer).__name__} to freeze them")
    weight = auto_model.get_input_embeddings().weight
    weight.requires_grad_(False)
    return weight.numel()


def transformer_layers(auto_model):
    """The transformer layers of a BERT-like encoder (``encoder.layer``), lowest first; None where there are none."""
    return getattr(getattr(auto_model, "encoder", None), "layer", None)


def freeze_lower_layers(model: SentenceTransformer, layers: int) -> int:
    """Stop training the embeddings and the lowest ``layers`` transformer layers of the model's encoder (no
    gradient is computed below the first trained layer, so the backward pass is that much shorter); returns the
    number of frozen weights. Raises ValueError when the encoder has fewer layers or none that can be found."""
    auto_model = getattr(model[0], "auto_model", None)
    encoder_layers = transformer_layers(auto_model)
    if encoder_layers is None:
        raise ValueError(f"cannot find the transformer layers of {type(auto_model).__name__} to freeze them")
    if layers > len(encoder_layers):
        raise ValueError(f"freeze_layers is {layers} but the model has {len(encoder_layers)} transformer layers")
    frozen = 0
    for module in [auto_model.embeddings, *list(encoder_layers)[:layers]]:
        for weight in module.parameters():
            weight.requires_grad_(False)
            frozen += weight.numel()
    return frozen


def encoder_layer_count(model_path: str) -> int | None:
    """The number of transformer layers the model at ``model_path`` declares (its ``config.json``), read without
    loading the weights; None when the configuration does not say."""
    from transformers import AutoConfig

    return getattr(AutoConfig.from_pretrained(model_path), "num_hidden_layers", None)


def uses_lora(config: HybridTrainingConfig) -> bool:
    return config.lora_rank > 0


def add_lora_adapter(model: SentenceTransformer, config: HybridTrainingConfig) -> int:
    """Add a LoRA adapter of rank ``config.lora_rank`` to the linear layers named in ``config.lora_targets``; every
    other weight stops training. Returns the number of trainable (adapter) weights."""
    try:
        from peft import LoraConfig
        from peft.functional import inject_adapter_in_model
    except ImportError:
        raise ImportError("LoRA training needs the peft package: pip install 'peft>=0.21'") from None

    lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_scaling_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.lora_targets))
    auto_model = model[0].auto_model
    # peft's functional API (its public entry for models it does not wrap) rather than transformers' add_adapter,
    # which demands a newer peft than transformers' own floor; the layers it injects are the same.
    try:
        inject_adapter_in_model(lora, auto_model)
    except ValueError as e:  # none of the target modules is in the model
        raise ValueError(f"cannot add LoRA adapters to {', '.join(config.lora_targets)}: {e}") from None
    for name, weight in auto_model.named_parameters():
        weight.requires_grad_("lora_" in name)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def merge_lora_adapter(model: SentenceTransformer) -> int:
    """Fold every LoRA adapter of the model into the weights it adapts and put the original layers back; returns the
    number of layers merged. Afterwards the model is the stock architecture again (no peft classes, no adapter
    configuration), so ``model.save`` writes a plain sentence-transformers folder.

    Written here because peft merges only models it wraps itself (``PeftModel.merge_and_unload``); the
    transformers integration that ``add_adapter`` uses injects the layers in place and offers no merge.
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    auto_model = model[0].auto_model
    adapted = [(name, module) for name, module in auto_model.named_modules() if isinstance(module, BaseTunerLayer)]
    for name, module in adapted:
        module.merge()
        parent_name, _, child_name = name.rpartition(".")
        parent = auto_model.get_submodule(parent_name) if parent_name else auto_model
        setattr(parent, child_name, module.get_base_layer())
    if hasattr(auto_model, "peft_config"):
        del auto_model.peft_config
    auto_model._hf_peft_config_loaded = False
    return len(adapted)


def load_lora_checkpoint(model: SentenceTransformer, checkpoint: Path) -> None:
    """Load the transformer weights of a checkpoint saved during a LoRA run (base layers and adapters, under peft's
    names) into ``model``, which carries the same adapters."""
    from safetensors.torch import load_file

    files = sorted(checkpoint.glob("model*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no model*.safetensors in the checkpoint {checkpoint}")
    state = {key: value for file in files for key, value in load_file(str(file)).items()}
    model[0].auto_model.load_state_dict(state, strict=True)


def lora_resuming_trainer(trainer_class: type) -> type:
    """``trainer_class`` with a checkpoint loader for LoRA runs. The stock loader rebuilds a plain model from the
    checkpoint folder and copies its state over, which cannot place the adapters' weights."""

    class LoRATrainer(trainer_class):
        def _load_from_checkpoint(self, checkpoint_path, model=None):
            load_lora_checkpoint(self.model, Path(checkpoint_path))

    return LoRATrainer
