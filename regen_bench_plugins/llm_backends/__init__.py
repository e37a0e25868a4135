"""First-party LLM backends: OpenAI-compatible, Gemini, local transformers."""
