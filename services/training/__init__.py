"""The training service: fine-tunes Hugging Face models with finetune plugins on Ray Train."""
