"""The index on disk and in memory: SQLite tables, segments, postings, BM25, vector stores, the
generations under index/, and the write path that keeps it in step with the files (sync).
May import qa.ingest, qa.models, qa.text and the top modules; never answering or faces."""
