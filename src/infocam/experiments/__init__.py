"""One module per paper table; each writes results.json, a Markdown table and a PNG figure."""
