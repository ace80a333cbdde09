"""Tiny generative models to import, built from config in a moment: a llama Hugging Face folder
(safetensors, a word-level tokenizer with a chat template) and a llama GGUF file written with the
``gguf`` package's writer (float32 tensors under llama.cpp's names, a llama tokenizer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CHAT_TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
HIDDEN, LAYERS, HEADS, FFN, VOCAB = 32, 2, 2, 64, 64


def tiny_t5(tokenizer):
    """A random-init one-layer T5 (seeded) sharing ``tokenizer``'s vocabulary; its eos is also
    its pad and decoder start."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    return T5ForConditionalGeneration(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=16,
            d_kv=8,
            d_ff=32,
            num_layers=1,
            num_heads=2,
            pad_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.eos_token_id,
        )
    ).eval()


def tiny_llama_folder(folder: Path) -> Path:
    """A 2-layer, hidden-32 LlamaForCausalLM saved as a Hugging Face folder with its tokenizer."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(VOCAB - 3)]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        intermediate_size=FFN,
        max_position_embeddings=128,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_llama_gguf(path: Path, *, architecture: str = "llama", tensors: bool = True) -> Path:
    """A 2-layer, hidden-32 llama as one GGUF file (``architecture`` written as its
    general.architecture, none when empty; ``tensors=False`` writes the header only)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), architecture or "llama")
    writer.add_name("tiny")
    writer.add_context_length(128)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("llama")
    # The vocabulary only: this tokenizer encodes text poorly (tests feed token ids).
    writer.add_token_list(["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(VOCAB - 3)])
    writer.add_token_scores([0.0] * 3 + [-float(i) for i in range(VOCAB - 3)])
    writer.add_token_types([2, 3, 3] + [1] * (VOCAB - 3))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_chat_template(CHAT_TEMPLATE)
    if tensors:
        rng = np.random.default_rng(0)

        def weight(*shape: int) -> np.ndarray:
            return (rng.standard_normal(shape) * 0.02).astype(np.float32)

        writer.add_tensor("token_embd.weight", weight(VOCAB, HIDDEN))
        for i in range(LAYERS):
            for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
                writer.add_tensor(f"blk.{i}.{name}.weight", weight(HIDDEN, HIDDEN))
            writer.add_tensor(f"blk.{i}.ffn_gate.weight", weight(FFN, HIDDEN))
            writer.add_tensor(f"blk.{i}.ffn_up.weight", weight(FFN, HIDDEN))
            writer.add_tensor(f"blk.{i}.ffn_down.weight", weight(HIDDEN, FFN))
            writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(HIDDEN, np.float32))
            writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(HIDDEN, np.float32))
        writer.add_tensor("output_norm.weight", np.ones(HIDDEN, np.float32))
    if not architecture:  # a GGUF that names no architecture (GGUFWriter always writes one)
        del writer.kv_data[0]["general.architecture"]
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
