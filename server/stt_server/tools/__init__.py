"""Operations tools: ``python -m stt_server.tools.<name>`` (dashboard, metrics_capture, plot_metrics,
security_smoke_check, check_tls_expiry, self_signed_cert)."""
