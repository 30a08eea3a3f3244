"""Fine-tuning: presets, data preparation with completion-only labels, LoRA / QLoRA / full training with trl's
SFTTrainer, NaN guards, signal checkpoints, in-run evaluation and reports. Entry point: ``python -m finetune``;
library entry point: :func:`assistant.finetuning.training.main` with a
:class:`~assistant.finetuning.config.FinetuneConfig`."""
