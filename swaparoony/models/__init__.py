"""Model files, their contracts and the sessions that run them: one module per model family (scrfd, arcface,
inswapper), each registered by one line in registry.py; family.py says what a family module provides."""
