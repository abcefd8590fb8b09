"""`python -m stt_operator run ...` is `stt-operator run ...`."""

from stt_operator.cli import main

main()
