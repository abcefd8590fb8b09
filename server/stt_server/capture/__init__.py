"""Server-side audio capture (``storage.persist_audio``): one WAV per session, with retention."""
