"""Test and benchmark helpers that are real parts: an OpenAI-compatible fault-injecting server."""
