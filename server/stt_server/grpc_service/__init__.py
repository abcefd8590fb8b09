"""The gRPC edge: servicer, session registry, API keys, rate limits, health and reflection."""
