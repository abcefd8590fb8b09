"""The OpenAI-compatible REST API (``POST /v1/audio/transcriptions``, ``GET /v1/models``); docs/rest-api.md."""
