"""The seed article: the documents qa answers from out of the box (shipped as package data)."""
