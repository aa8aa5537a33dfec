"""Protocol runners of the papers' experiments, writing JSON/CSV/Markdown/figures."""
