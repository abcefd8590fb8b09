"""``stt-bench``: ``load`` (concurrent streams -> seed 002 report), ``offline`` (Recognize throughput), ``capacity``.

Examples::

    stt-bench load --server 127.0.0.1:50051 --sessions 8 --duration 60 --realtime \\
        --http http://127.0.0.1:8000 --token "$STT_CONTROL_TOKEN" --out-dir docs/benchmarks --label cpu-8
    stt-bench offline --server 127.0.0.1:50051 --direct
    stt-bench rest --server 127.0.0.1:50051 --rest http://127.0.0.1:8080 --clients 10
    stt-bench capacity --server 127.0.0.1:50051 --budget 900 --http http://127.0.0.1:8000 --token "$T"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from stt_server.bench import offline
from stt_server.bench.load import LoadOptions, run_load
from stt_server.bench.report import LoadReport, render_json, render_markdown


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", text).strip("-") or "run"


def write_report(report: LoadReport, out_dir: Path) -> tuple[Path, Path]:
    """``load-<label>.md`` and ``.json`` (label defaults to sessions and date)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    label = report.label or f"{report.workload.concurrent_sessions}x-{datetime.now(UTC):%Y%m%d-%H%M}"
    stem = out_dir / f"load-{_slug(label)}"
    md, js = stem.with_suffix(".md"), stem.with_suffix(".json")
    md.write_text(render_markdown(report))
    js.write_text(render_json(report))
    return md, js


def _add_load(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("load", help="concurrent streaming load with an SLO report")
    p.add_argument("--server", required=True, help="gRPC HOST:PORT")
    p.add_argument("--sessions", type=int, required=True, help="concurrent streams")
    p.add_argument("--duration", type=float, required=True, help="seconds to keep starting streams")
    p.add_argument("--realtime", action="store_true", help="pace audio at real time (a live microphone)")
    p.add_argument("--input", choices=("speech", "silence", "noise"), default="speech")
    p.add_argument("--api-key")
    p.add_argument("--http", help="control plane URL for /system and /metrics.json, e.g. http://127.0.0.1:8000")
    p.add_argument("--token", help="control token for --http")
    p.add_argument("--insecure", action="store_true", help="skip TLS verification for --http")
    p.add_argument("--tls-ca", type=Path, help="CA / self-signed cert for a TLS gRPC port")
    p.add_argument("--out-dir", type=Path, default=Path("docs/benchmarks"))
    p.add_argument("--label", default="")
    p.add_argument("--connect-timeout", type=float, default=30.0, help="seconds to wait for the server")


def _add_offline(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("offline", help="Recognize throughput vs faster-whisper directly")
    p.add_argument("files", nargs="*", type=Path, help="16-bit WAV files (default: synthesized speech)")
    p.add_argument("--server", help="gRPC HOST:PORT (omit with --direct for the direct figure only)")
    p.add_argument("--direct", action="store_true", help="also time faster-whisper called directly")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--api-key")
    p.add_argument("--beam-size", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="where --direct runs faster-whisper (match the server's model.device)")
    p.add_argument("--compute-type", default="int8", help="--direct's compute type (float16 on cuda)")
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    p.add_argument("--long", type=float, metavar="SECONDS",
                   help="instead: a synthesized recording this long, Recognize vs sequential faster-whisper "
                        "(interleaved rounds, WER); writes offline-long-<label>.json/.md to --out-dir")
    p.add_argument("--rounds", type=int, default=5, help="--long: timed rounds per method")
    p.add_argument("--no-fw-batched", action="store_true",
                   help="--long: skip faster-whisper's BatchedInferencePipeline reference column")
    p.add_argument("--out-dir", type=Path, default=Path("docs/benchmarks"))
    p.add_argument("--label", default="cpu-2core")


def _add_capacity(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("capacity", help="the most real-time streams one server holds within the SLO")
    p.add_argument("--server", required=True, help="gRPC HOST:PORT")
    p.add_argument("--audio", nargs="+", type=Path, default=[],
                   help="WAV files each stream sends in turn (default: synthesized speech with pauses)")
    p.add_argument("--budget", type=float, default=900.0, help="seconds the whole search may take")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of stream starts per trial")
    p.add_argument("--start", type=int, default=4, help="first number of streams tried")
    p.add_argument("--max-streams", type=int, default=256)
    p.add_argument("--repeats", type=int, default=2, help="trials at each boundary, the first included")
    p.add_argument("--api-key")
    p.add_argument("--http", help="control plane URL, for server CPU and metrics in the report")
    p.add_argument("--token", help="control token for --http")
    p.add_argument("--insecure", action="store_true", help="skip TLS verification for --http")
    p.add_argument("--tls-ca", type=Path, help="CA / self-signed cert for a TLS gRPC port")
    p.add_argument("--out-dir", type=Path, default=Path("."))
    p.add_argument("--label", default="")
    p.add_argument("--connect-timeout", type=float, default=30.0, help="seconds to wait for the server")


def _run_capacity(args: argparse.Namespace) -> int:
    from stt_server.bench.capacity import SearchSettings
    from stt_server.bench.capacity_run import CapacityOptions, run_capacity, write_reports
    from stt_server.bench.workload import build_inputs, load_files

    try:
        settings = SearchSettings(start=args.start, max_streams=args.max_streams, repeats=args.repeats,
                                  budget_sec=args.budget, first_trial_estimate_sec=args.duration + 20.0)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.duration <= 0:
        print("error: --duration must be > 0", file=sys.stderr)
        return 2
    load = LoadOptions(
        server=args.server, sessions=args.start, duration_sec=args.duration, realtime=True, api_key=args.api_key,
        http_url=args.http, token=args.token, insecure=args.insecure, label=args.label,
        root_certificates=args.tls_ca.read_bytes() if args.tls_ca else None, connect_timeout_sec=args.connect_timeout)
    try:
        inputs = load_files([str(p) for p in args.audio]) if args.audio else build_inputs("speech", streams=6)
        result, report = asyncio.run(run_capacity(CapacityOptions(load=load, settings=settings), inputs=inputs))
    except TimeoutError:
        print(f"error: no gRPC server answered at {args.server} within {args.connect_timeout:g} s", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # unusable --audio, hibari-tts missing, --http refusing
        print(f"error: {exc}", file=sys.stderr)
        return 2
    md, js = write_reports(result, report, server=args.server, out_dir=args.out_dir,
                           label=_slug(args.label) if args.label else "")
    print(f"holds within the SLO (P99s): {result.p99_streams or 0} streams; worst case: {result.worst_streams or 0}")
    print(f"search ended: {result.stopped}")
    if result.recommendation is not None:
        rec = result.recommendation
        print(f"recommended: spec.limits.maxSessions: {rec.max_sessions}, "
              f"spec.autoscaling.targetActiveSessionsPerReplica: {rec.target_active_sessions_per_replica}")
    print(f"wrote {md} and {js}")
    return 0 if result.p99_streams else 1


def _run_load(args: argparse.Namespace) -> int:
    if args.sessions < 1 or args.duration <= 0:
        print("error: --sessions must be >= 1 and --duration > 0", file=sys.stderr)
        return 2
    options = LoadOptions(
        server=args.server, sessions=args.sessions, duration_sec=args.duration, realtime=args.realtime,
        input=args.input, api_key=args.api_key, http_url=args.http, token=args.token, insecure=args.insecure,
        label=args.label, root_certificates=args.tls_ca.read_bytes() if args.tls_ca else None,
        connect_timeout_sec=args.connect_timeout,
    )
    try:
        report = asyncio.run(run_load(options))
    except TimeoutError:
        print(f"error: no gRPC server answered at {args.server} within {args.connect_timeout:g} s", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # e.g. hibari-tts missing for --input speech, or --http refusing
        print(f"error: {exc}", file=sys.stderr)
        return 2
    md, js = write_report(report, args.out_dir)
    sys.stdout.write(render_markdown(report))
    print(f"wrote {md} and {js}")
    return 0 if all(r.verdict != "missed" for r in report.slo) else 1


def _run_long_offline(args: argparse.Namespace) -> int:
    from stt_server.bench import long_offline
    from stt_server.bench.long_audio import long_recording

    if not args.server:
        print("error: --long needs --server (the Recognize side of the comparison)", file=sys.stderr)
        return 2
    recording = long_recording(args.long)
    load_before = os.getloadavg()
    results = asyncio.run(long_offline.measure_long(recording, server=args.server, rounds=args.rounds,
                                                    api_key=args.api_key, with_fw_batched=not args.no_fw_batched))
    report = long_offline.summarize(results, recording=recording, load_before=load_before,
                                    load_after=os.getloadavg())
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / f"offline-long-{_slug(args.label)}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = long_offline.render_markdown(report)
    stem.with_suffix(".md").write_text(markdown)
    sys.stdout.write(markdown)
    return 0 if report["ok"] else 1


def _run_offline(args: argparse.Namespace) -> int:
    if args.long:
        return _run_long_offline(args)
    if not args.server and not args.direct:
        print("error: give --server, --direct, or both", file=sys.stderr)
        return 2
    audios = offline.load_inputs(args.files)
    direct = (offline.DirectWhisper(beam_size=args.beam_size, device=args.device, compute_type=args.compute_type)
              if args.direct else None)
    measured = asyncio.run(offline.measure(audios, repeat=args.repeat, server=args.server, api_key=args.api_key,
                                           direct=direct))
    result: dict[str, object] = {key: offline.throughput_dict(t) for key, t in measured.items()}
    if "server" in measured and "direct" in measured:
        result["comparison"] = offline.compare(measured["server"], measured["direct"])
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    comparison = result.get("comparison")
    return 1 if isinstance(comparison, dict) and not comparison["ok"] else 0


def _add_rest(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rest", help="OpenAI-compatible REST transcriptions next to gRPC Recognize")
    p.add_argument("--server", required=True, help="gRPC HOST:PORT")
    p.add_argument("--rest", required=True, help="REST API URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--clients", type=int, default=10, help="concurrent clients per protocol")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per protocol (interleaved)")
    p.add_argument("--api-key")
    p.add_argument("--out-dir", type=Path, default=Path("docs/benchmarks"))
    p.add_argument("--label", default="rest-vs-grpc")


def _run_rest(args: argparse.Namespace) -> int:
    from stt_server.bench import rest

    if args.clients < 1 or args.rounds < 1:
        print("error: --clients and --rounds must be >= 1", file=sys.stderr)
        return 2
    audio = rest.long_clip()
    before = rest.machine()
    figures = asyncio.run(rest.measure(grpc_target=args.server, rest_url=args.rest.rstrip("/"), clients=args.clients,
                                       rounds=args.rounds, audio=audio, api_key=args.api_key))
    result = {"clients": args.clients, "rounds": args.rounds, "audio_sec": round(audio.duration_sec, 3),
              "machine_before": before, "machine_after": rest.machine(),
              "protocols": [figures[p].to_dict() for p in rest.PROTOCOLS],
              "same_transcript": figures["grpc"].transcript == figures["rest"].transcript}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / _slug(args.label)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(rest.render_markdown(result))
    sys.stdout.write(rest.render_markdown(result))
    print(f"wrote {stem}.json and {stem}.md")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stt-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_load(sub)
    _add_offline(sub)
    _add_capacity(sub)
    _add_rest(sub)
    args = parser.parse_args(argv)
    runners = {"load": _run_load, "offline": _run_offline, "capacity": _run_capacity, "rest": _run_rest}
    try:
        return runners[args.command](args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
