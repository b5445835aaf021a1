"""gemini-sft: clean, validate, tune, evaluate and promote Gemini fine-tunes on Vertex AI."""

__version__ = "0.1.0"
