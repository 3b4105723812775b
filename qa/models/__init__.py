"""The models and their runtimes: the embedder and its ONNX export, the learned sentence scorer
and reader with their weights, token-level word match. May import qa.text and the top modules."""
