"""Built-in long-input strategies: truncate (head, head and tail), chunk (summarize the chunks,
then the summaries) and extract (the most salient sentences)."""
