"""The destination portraits: analysed once, reloaded when their files change, edited by operators."""
