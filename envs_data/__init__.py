"""Data bundled with codegym: the starter problem set, prompt templates, the custom schema."""
