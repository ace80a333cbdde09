"""Built-in generation metrics: rouge (rouge-score), bleu and chrf (sacrebleu), exact_match."""
