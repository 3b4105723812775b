"""A question -> an answer: clean questions, the conversation, search, scopes, reading
sentences, composing the cited answer, the LlamaIndex retriever. May import qa.storage and
everything below it; never qa.engine or the faces."""
