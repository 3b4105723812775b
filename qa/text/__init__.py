"""How English text is read: sentences, headings and other structure, what a question asks for
(english); HTML pages to plain text (html_text). Imports nothing of qa's but the top modules."""
