"""Model files, their contracts and the sessions that run them, one module per model family."""
