"""Files -> documents -> chunks: loading each format, titles, stable ids, passage chunking, the
records of files and documents. May import qa.text and the top modules."""
