"""The train_tokenizer stage."""
