"""Section `tracing`: what tracing costs when it samples nothing.

Two servers on core 0, each on its own fresh schema with the realistic definitions: one with
tracing off, one with tracing on (OTLP endpoint set to a port where nothing listens, sampler
`parentbased_traceidratio` at 0, so every span is created and dropped, none exported).
TrackEvent at concurrency 64 alternates between them round by round; the figures are the
medians of the rounds, with the server's CPU time per call. `tracing_overhead` is the
relative loss of throughput (goal: at most 0.03).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from contextlib import ExitStack
from typing import Any

from bench import cpu
from bench.harness import (
    POSTGRES_URL,
    TRACK,
    apply,
    drop_schema,
    free_port,
    load,
    new_schema,
    process,
    realistic_definitions,
    serve_args,
    server_env,
)


def tracing_env(on: bool) -> dict[str, str]:
    if not on:
        return {}
    return {
        "ACCOLADE_OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0",
    }


def figures(opts: argparse.Namespace) -> dict[str, Any]:
    secs = 2.0 if opts.quick else 6.0
    rounds = 2 if opts.quick else 5
    schemas = [asyncio.run(new_schema(opts.server_path)) for _ in range(2)]
    rps: dict[bool, list[float]] = {False: [], True: []}
    cpu_us: dict[bool, list[float]] = {False: [], True: []}
    try:
        with ExitStack() as stack:
            servers = {}
            for on, schema in zip((False, True), schemas, strict=True):
                port = free_port()
                target = f"127.0.0.1:{port}"
                env = {**server_env(schema, port, opts.server_path), **tracing_env(on)}
                servers[on] = (target, stack.enter_context(process(serve_args(), env, 0, target)))
                apply(target, realistic_definitions())
                load("unary", target, TRACK, 16, 1.0, 10_000)  # warm up
            for i in range(rounds):
                order = (False, True) if i % 2 == 0 else (True, False)
                for on in order:
                    target, proc = servers[on]
                    with cpu.measure(POSTGRES_URL, proc.pid) as use:
                        res = load("unary", target, TRACK, 64, secs, 10_000)
                    rps[on].append(res["rps"])
                    cpu_us[on].append(use.per(res["total_calls"])[0])
    finally:
        for schema in schemas:
            asyncio.run(drop_schema(schema))
    off_rps, on_rps = statistics.median(rps[False]), statistics.median(rps[True])
    off_cpu, on_cpu = statistics.median(cpu_us[False]), statistics.median(cpu_us[True])
    return {
        "tracing_off_rps": round(off_rps),
        "tracing_on_ratio0_rps": round(on_rps),
        "tracing_off_server_cpu_us": round(off_cpu),
        "tracing_on_ratio0_server_cpu_us": round(on_cpu),
        "tracing_overhead": round(1 - on_rps / off_rps, 3),
        "tracing_cpu_overhead": round(on_cpu / off_cpu - 1, 3),
        "tracing_rounds": rounds,
    }
