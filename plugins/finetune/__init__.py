"""Finetune strategy plugins: which weights of a pretrained model train (all, LoRA, a prompt)."""
