#!/usr/bin/env python3
#
# benchmarks/run_benchmarks.py
# ~~~~~~~~~~~~~~~~~~~~~~~~~~~~
# Runs every measurement of every contender with the benchmark programs built by run_benchmarks.sh, interleaved
# (A B C A B C ...) over several rounds after a warm-up, and writes results/latest.json, results/latest.md and
# results/latest.png. Any failed run (lost or corrupted data included) stops everything with a non-zero status.
#
"""Runs peergraph's microbenchmarks and writes the results (see benchmarks/README.md)."""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# Scenario name -> (unit, higher is better). The order is the order of the tables and the chart.
SCENARIOS = {
    "small_msgs_64": ("msgs/s", True),
    "small_msgs_1k": ("msgs/s", True),
    "large_msgs_1m": ("Gbit/s", True),
    "gather_256x64": ("sends/s", True),
    "rtt_64_p50": ("µs", False),
    "rtt_64_p99": ("µs", False),
    "syscalls_per_msg": ("calls", False),
    "allocs_per_msg": ("allocs", False),
    "instr_per_rtt": ("instructions", False),
    "idle_conn_bytes": ("bytes", False),
    "record_flood_20": ("records/s", True),
    "record_sync_join": ("wire B per record B", False),
    "record_resync_100": ("wire B per store B", False),
    "record_store_sqlite": ("× memory store", False),
    "repair_after_loss": ("s", False),
}

# Known contenders in table order; any other contender the program lists comes after them.
CONTENDER_ORDER = ["raw", "asio_callback", "asio_coro", "zeromq", "peergraph_send", "peergraph"]
PEERGRAPH_CONTENDERS = ["peergraph_send", "peergraph"]
COLORS = {
    "raw": 0x7F7F7F,
    "asio_callback": 0x1F77B4,
    "asio_coro": 0x17BECF,
    "zeromq": 0xFF7F0E,
    "peergraph_send": 0x98DF8A,
    "peergraph": 0x2CA02C,
}
OTHER_COLORS = [0x9467BD, 0x8C564B, 0xE377C2, 0xBCBD22, 0xD62728]

# The graph's targets, checked in every run: (scenario, reference contender or None for an absolute bound, bound).
# A ratio is the peergraph contender's median divided by the reference's; for a higher-is-better scenario the target
# is a lower bound, otherwise an upper bound.
TARGET_CONTENDER = "peergraph"
TARGETS = [
    ("small_msgs_64", "zeromq", 1.5),
    ("syscalls_per_msg", None, 0.01),
    ("small_msgs_1k", "zeromq", 1.5),
    ("large_msgs_1m", "raw", 0.9),
    ("rtt_64_p50", "raw", 1.1),
    ("rtt_64_p50", "zeromq", 0.7),
    ("rtt_64_p99", "raw", 1.1),
    ("rtt_64_p99", "zeromq", 0.7),
    ("instr_per_rtt", "asio_callback", 1.1),
    # Zero allocations per message: counting by difference leaves a few allocations of the run's edges, far below one
    # in a thousand messages.
    ("allocs_per_msg", None, 0.001),
    ("idle_conn_bytes", None, 4096),
    # A joining node receives each record as one record frame, whose 28-byte header comes on top of record::size()
    # (2.6 % at 1 KiB of data), the handshake and a few sync messages: 10 % is room for those, not for a record sent
    # twice.
    ("record_sync_join", None, 1.1),
    # Two stores of 100,000 records that differ in 100: the sync messages grow with the difference, not the stores,
    # so the second synchronisation costs the 100 records (0.1 % of the store) and their fingerprints and item lists.
    ("record_resync_100", None, 0.02),
    # A SQLite store writes on a thread of its own, in batches: the graph's context pays about what the memory store
    # costs it (encoding and queueing instead of copying); half again is room for a slower disk under load.
    ("record_store_sqlite", None, 1.5),
    # 20 nodes in a line, the middle one gone silent, keepalive at 1 s: 2.5 s until its neighbors notice (half an
    # interval into the rule's 2 to 3), up to 0.1 s of backoff, then a connect and a synchronisation of milliseconds
    # (the silent node is tried last): 2.6 s; 3.0 s leaves room for a loaded machine.
    ("repair_after_loss", None, 3.0),
]

STREAM_MEASURES = ["small_msgs_64", "small_msgs_1k", "large_msgs_1m", "gather_256x64"]
# The record scenarios: measurements of their own, one run per process, counted in records (MODES); and the repair
# scenario, run the same way, counted in nodes.
RECORD_MEASURES = {"record_flood_20": "flood_records", "record_sync_join": "join_records",
                   "record_resync_100": "resync_records", "record_store_sqlite": "store_records",
                   "repair_after_loss": "repair_nodes"}
# What the tables say of each record scenario, from the medians of its runs' details ("tree": nodes - 1, the
# fewest record frames that bring a record to every node).
RECORD_NOTES = {
    "record_flood_20": (
        "{records:,.0f} records of {data_bytes:.0f} B added at one of {nodes:.0f} nodes ({links:.0f} links): every "
        "node had every record after {seconds:.3g} s; {record_frames_per_record:.3g} record frames of "
        "{record_frame_bytes:.0f} B per record on the wire ({redundant_frames_per_record:.3g} more than the "
        "{tree:.0f} a record needs at least), {wire_bytes_per_record:,.0f} wire bytes per record; "
        "{relayed_records_per_second:,.0f} records/s through the relays"),
    "record_sync_join": (
        "{records:,.0f} records of {data_bytes:.0f} B ({record_bytes:,.0f} bytes of records): the joiner was "
        "synchronised after {seconds:.3g} s ({records_per_second:,.0f} records/s; {relayed_seconds:.3g} s through "
        "the relay); {wire_bytes:,.0f} wire bytes, {wire_bytes_from_joiner:,.0f} of them from the joiner; "
        "{record_frames:,.0f} record frames, {sync_frames:.0f} sync frames of {sync_frame_bytes:,.0f} B"),
    "record_resync_100": (
        "{records:,.0f} records of {data_bytes:.0f} B on each node, {differing:.0f} of them differing "
        "({store_bytes:,.0f} bytes of records): {wire_bytes:,.0f} wire bytes in {seconds:.3g} s; record frames "
        "{record_frames_to_second:.0f} to the node that connected ({changes_at_second:.0f} changes there), "
        "{record_frames_to_first:.0f} to the other ({changes_at_first:.0f} changes there); "
        "{sync_frames:.0f} sync frames of {sync_frame_bytes:,.0f} B; {ratio_to_first_sync:.3g} of the first "
        "synchronisation's {first_sync_wire_bytes:,.0f} wire bytes"),
    "record_store_sqlite": (
        "{records:,.0f} records of {data_bytes:.0f} B added by one node's application: "
        "{memory_records_per_second:,.0f} records/s on the memory store, {sqlite_records_per_second:,.0f} records/s "
        "on SQLite; the longest gap of a 1 ms ticker on the graph's context {memory_longest_gap_ms:.3g} ms and "
        "{sqlite_longest_gap_ms:.3g} ms; the SQLite file held everything {sqlite_written_seconds:.3g} s after the "
        "last add_record (closing the graph)"),
    "repair_after_loss": (
        "{nodes:.0f} nodes in a line, the middle one frozen {freeze_phase_seconds:.2g} s after a keepalive look "
        "(keepalive {keepalive_interval_seconds:.3g} s): its neighbors noticed after {detected_first_seconds:.3g} s "
        "and {detected_last_seconds:.3g} s; the halves were connected again after {whole_seconds:.3g} s and listed the same {listed_at_converged:.0f} nodes {whole_to_converged_seconds:.2g} s "
        "later; {victim_attempts:.0f} attempts at the lost node in all; it was gone from every list after "
        "{victim_gone_seconds:.3g} s (presence lifetime {presence_lifetime_seconds:.3g} s)"),
}
SYSCALLS = ["write", "writev", "sendmsg", "sendto"]

MODES = {
    "quick": {
        "rounds": 3,              # timed rounds (streams, round trips)
        "stream_seconds": 0.2,    # per stream run
        "warmup_seconds": 0.1,    # per warm-up stream run
        "rtt_count": 2000,        # timed round trips per run
        "rtt_warmup": 200,        # untimed round trips first
        "count_rounds": 1,        # rounds of the counted measurements (system calls, allocations, instructions)
        "counted_msgs": 20000,    # N for syscalls_per_msg (and 2N)
        "alloc_msgs": 100000,     # N for allocs_per_msg (and 2N)
        "instr_round_trips": 500,  # N for instr_per_rtt (and 2N)
        "idle_rounds": 1,
        "idle_connections": 2000,
        "record_rounds": 1,       # runs of each record scenario
        "flood_records": 1000,    # records flooded in record_flood_20
        "join_records": 10000,    # records the joining node receives in record_sync_join
        "resync_records": 100000,  # records on each node in record_resync_100 (100 of them differ): as in full runs
        "store_records": 20000,   # records added on each store in record_store_sqlite
        "repair_nodes": 20,       # nodes of the line in repair_after_loss: as in full runs
    },
    "full": {
        "rounds": 7,
        "stream_seconds": 1.0,
        "warmup_seconds": 0.5,
        "rtt_count": 20000,
        "rtt_warmup": 2000,
        "count_rounds": 3,
        "counted_msgs": 100000,
        "alloc_msgs": 400000,
        "instr_round_trips": 2000,
        "idle_rounds": 3,
        "idle_connections": 2000,
        "record_rounds": 3,
        "flood_records": 10000,
        "join_records": 100000,
        "resync_records": 100000,
        "store_records": 100000,
        "repair_nodes": 20,
    },
}


class Runner:
    """Runs the benchmark programs and reports progress."""

    def __init__(self, bench, bench_allocs):
        self.bench = bench
        self.bench_allocs = bench_allocs
        self.started = time.monotonic()

    def elapsed(self):
        return time.monotonic() - self.started

    def run(self, cmd, timeout=300, stdout_json=True):
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            die(f"timed out after {timeout} s: {' '.join(cmd)}")
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            die(f"exit status {proc.returncode}: {' '.join(cmd)}")
        if not stdout_json:
            return None
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if not lines:
            die(f"no result line from: {' '.join(cmd)}")
        return json.loads(lines[-1])

    def measure(self, contender, measure, *extra, program=None, timeout=300):
        cmd = [program or self.bench, "--contender", contender, "--measure", measure, *map(str, extra)]
        return self.run(cmd, timeout=timeout)

    def progress(self, scenario, contender, value, note=""):
        unit = SCENARIOS[scenario][0]
        sys.stderr.write(f"[{self.elapsed():6.1f} s] {scenario:<17} {contender:<15} {value:>14.6g} {unit}{note}\n")


def die(message):
    sys.stderr.write(f"run_benchmarks: FAILED: {message}\n")
    sys.exit(1)


def ordered(names):
    known = [c for c in CONTENDER_ORDER if c in names]
    return known + sorted(c for c in names if c not in CONTENDER_ORDER)


# ---------------------------------------------------------------------------------------------------------------
# Counting system calls and instructions.

def syscall_counter():
    """'perf' if its syscall tracepoints count here, else 'strace', else None."""
    if shutil.which("perf"):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "perf.txt")
            events = ",".join(f"syscalls:sys_enter_{s}" for s in SYSCALLS)
            proc = subprocess.run(["perf", "stat", "-x,", "-o", out, "-e", events, "--", "true"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            if proc.returncode == 0 and parse_perf(out) is not None:
                return "perf"
    if shutil.which("strace"):
        return "strace"
    return None


def parse_perf(path):
    total = 0
    seen = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.strip().split(",")
            if len(fields) >= 3 and fields[2].startswith("syscalls:sys_enter_"):
                if not fields[0].isdigit():
                    return None
                total += int(fields[0])
                seen += 1
    return total if seen == len(SYSCALLS) else None


def parse_strace(path):
    total = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 5 and fields[-1] in SYSCALLS and fields[3].isdigit():
                total += int(fields[3])
    return total


def count_syscalls(runner, method, cmd):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "count.txt")
        if method == "perf":
            events = ",".join(f"syscalls:sys_enter_{s}" for s in SYSCALLS)
            runner.run(["perf", "stat", "-x,", "-o", out, "-e", events, "--"] + cmd, stdout_json=False)
            total = parse_perf(out)
            if total is None:
                die("perf stat gave no syscall counts")
            return total
        runner.run(["strace", "-f", "-c", "-o", out, "-e", "trace=" + ",".join(SYSCALLS)] + cmd, stdout_json=False)
        return parse_strace(out)


def count_instructions(runner, cmd):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        runner.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--"] + cmd, timeout=600,
                   stdout_json=False)
        with open(out, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(r"^(?:totals|summary):\s+(\d+)", line)
                if m:
                    return int(m.group(1))
    die("callgrind wrote no instruction total")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# The measurements.

def run_all(runner, supports, mode, method, only=None):
    """Returns {scenario: {contender: [samples]}} and {scenario: {contender: [details]}} (the record scenarios').
    With `only`, runs just those scenarios."""
    samples = {s: {} for s in SCENARIOS}
    details = {s: {} for s in SCENARIOS}

    def add(scenario, contender, value, note=""):
        samples[scenario].setdefault(contender, []).append(value)
        runner.progress(scenario, contender, value, note)

    def who(measure):
        return [c for c in ordered(supports) if measure in supports[c]]

    def wanted(*scenarios):
        return only is None or any(s in only for s in scenarios)

    # Streams: a warm-up run of each contender, then rounds A B C A B C.
    for measure in STREAM_MEASURES:
        if not wanted(measure):
            continue
        contenders = who(measure)
        for c in contenders:
            runner.measure(c, measure, "--seconds", mode["warmup_seconds"])
        for _ in range(mode["rounds"]):
            for c in contenders:
                r = runner.measure(c, measure, "--seconds", mode["stream_seconds"])
                add(measure, c, r["values"][measure])

    # Round trips.
    contenders = who("rtt_64") if wanted("rtt_64_p50", "rtt_64_p99") else []
    for c in contenders:
        runner.measure(c, "rtt_64", "--count", mode["rtt_warmup"], "--warmup", 0)
    for _ in range(mode["rounds"]):
        for c in contenders:
            r = runner.measure(c, "rtt_64", "--count", mode["rtt_count"], "--warmup", mode["rtt_warmup"])
            add("rtt_64_p50", c, r["values"]["rtt_64_p50"])
            add("rtt_64_p99", c, r["values"]["rtt_64_p99"])

    # System calls per message: small_msgs_64 with N and 2N messages; the difference leaves out start and exit.
    n = mode["counted_msgs"]
    contenders = who("small_msgs_64")
    if not wanted("syscalls_per_msg"):
        pass
    elif method is not None:
        for _ in range(mode["count_rounds"]):
            for c in contenders:
                calls = [count_syscalls(runner, method, [runner.bench, "--contender", c, "--measure", "small_msgs_64",
                                                         "--count", str(k)]) for k in (n, 2 * n)]
                add("syscalls_per_msg", c, (calls[1] - calls[0]) / n, f"  ({method})")
    else:
        sys.stderr.write("run_benchmarks: neither perf nor strace works here; syscalls_per_msg is left out\n")

    # Heap allocations per message, sender and receiver together, in the allocation-counting program: those made
    # while the receiver verifies the middle half of each stream and the sender still sends (the first quarter brings
    # queues and pools to their working size; the sender's wind-down is left out), by difference of the N and 2N runs.
    # N is large because the sender runs ahead by what the socket buffers hold (tens of thousands of small frames).
    # Early in the first quarter the receiver stalls once until the sender waits for room (harness.cpp,
    # steady_window), so that the full-socket path is warm before the window opens, in every run.
    n = mode["alloc_msgs"]
    for _ in range(mode["count_rounds"] if wanted("allocs_per_msg") else 0):
        for c in contenders:
            runs = [runner.measure(c, "small_msgs_64", "--count", k, program=runner.bench_allocs) for k in (n, 2 * n)]
            if any("steady_allocations" not in r for r in runs):
                die(f"{c}: the allocation-counting run reported no steady half")
            allocs = [r["steady_allocations"] for r in runs]
            frames = [r["steady_frames"] for r in runs]
            add("allocs_per_msg", c, (allocs[1] - allocs[0]) / (frames[1] - frames[0]))

    # User-space instructions per round trip, both ends on one thread, under callgrind.
    contenders = who("rtt_64_one_thread")
    k = mode["instr_round_trips"]
    if not wanted("instr_per_rtt"):
        pass
    elif shutil.which("valgrind"):
        for _ in range(mode["count_rounds"]):
            for c in contenders:
                instr = [count_instructions(runner, [runner.bench, "--contender", c, "--measure", "rtt_64_one_thread",
                                                     "--count", str(m)]) for m in (k, 2 * k)]
                add("instr_per_rtt", c, (instr[1] - instr[0]) / k)
    else:
        sys.stderr.write("run_benchmarks: valgrind not found; instr_per_rtt is left out\n")

    # Memory per idle connection.
    contenders = who("idle_conn")
    for _ in range(mode["idle_rounds"] if wanted("idle_conn_bytes") else 0):
        for c in contenders:
            r = runner.measure(c, "idle_conn", "--count", mode["idle_connections"])
            add("idle_conn_bytes", c, r["values"]["idle_conn_bytes"])

    # Records and repair: rounds of those scenarios, each run in a process of its own; the runs' details (times,
    # frames, bytes) are kept for the notes under the tables.
    for _ in range(mode["record_rounds"]):
        for measure, count_key in RECORD_MEASURES.items():
            if not wanted(measure):
                continue
            for c in who(measure):
                r = runner.measure(c, measure, "--count", mode[count_key], timeout=900)
                details[measure].setdefault(c, []).append(r["details"])
                add(measure, c, r["values"][measure])

    return samples, details


def summarize(samples, details):
    scenarios = {}
    for scenario, by_contender in samples.items():
        unit = SCENARIOS[scenario][0]
        entries = {}
        for c in ordered(by_contender):
            values = by_contender[c]
            entries[c] = {"median": round_sig(statistics.median(values)), "min": round_sig(min(values)),
                          "max": round_sig(max(values)), "unit": unit}
            runs = details[scenario].get(c)
            if runs:
                entries[c]["details"] = {key: round_sig(statistics.median(run[key] for run in runs))
                                         for key in runs[0] if all(key in run for run in runs)}
        if entries:
            scenarios[scenario] = entries
    return scenarios


def round_sig(v, digits=6):
    return float(f"{v:.{digits}g}")


# ---------------------------------------------------------------------------------------------------------------
# Machine description.

def machine_info(runner, mode_name, method):
    m = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    m["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    m.setdefault("cpu_model", platform.processor() or "unknown")
    m["cores"] = os.cpu_count()
    m["kernel"] = platform.system() + " " + platform.release()
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    m["os"] = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    m.update(runner.run([runner.bench, "--machine"]))
    m["mode"] = mode_name
    m["syscall_counter"] = method or "none"
    m["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    m["load_average_at_start"] = round(os.getloadavg()[0], 2)
    return m


# ---------------------------------------------------------------------------------------------------------------
# Output.

def fmt(v):
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a == 0:
        return "0"
    if a >= 100:
        return f"{v:.4g}"
    return f"{v:.3g}"


def compact(v):
    """Three significant digits with an SI suffix, for chart labels."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= factor:
            return f"{v / factor:.3g}{suffix}"
    return f"{v:.3g}"


def markdown(result, settings):
    machine = result["machine"]
    scenarios = result["scenarios"]
    present = ordered({c for entries in scenarios.values() for c in entries})
    pg = [c for c in PEERGRAPH_CONTENDERS if c in present]
    lines = [
        "# peergraph microbenchmarks: latest results",
        "",
        f"Run `{settings}` on {machine['date']}: {machine['cpu_model']}, {machine['cores']} cores, "
        f"{machine['kernel']}, {machine.get('os', '')}, {machine['compiler']}, Asio {machine['asio']}, "
        f"libzmq {machine['libzmq']} ({machine['build']}); load average {machine['load_average_at_start']} at the "
        f"start, system calls counted with {machine['syscall_counter']}.",
        "",
        "Median, min and max over the rounds. "
        + ("Ratio columns: the peergraph contender's median divided by this contender's median."
           if pg else "No peergraph contender is built yet, so there are no ratio columns."),
        "",
    ]
    for higher, title in ((True, "higher is better"), (False, "lower is better")):
        names = [s for s in SCENARIOS if s in scenarios and SCENARIOS[s][1] == higher]
        if not names:
            continue
        head = [f"scenario ({title})", "unit", "contender", "median", "min", "max"]
        head += [f"{p} ÷ contender" for p in pg]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|")
        for s in names:
            entries = scenarios[s]
            for i, c in enumerate(ordered(entries)):
                e = entries[c]
                row = [f"`{s}`" if i == 0 else "", e["unit"] if i == 0 else "", c, fmt(e["median"]), fmt(e["min"]),
                       fmt(e["max"])]
                for p in pg:
                    if p == c or p not in entries:
                        row.append("")
                    elif entries[c]["median"] == 0:
                        row.append("—" if entries[p]["median"] != 0 else "1.00×")
                    else:
                        row.append(f"{entries[p]['median'] / entries[c]['median']:.2f}×")
                lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += record_lines(scenarios)
    lines += target_lines(scenarios)
    return "\n".join(lines)


def record_lines(scenarios):
    """What the record scenarios' runs measured besides their value (medians of the runs' details)."""
    rows = []
    for scenario, note in RECORD_NOTES.items():
        entry = scenarios.get(scenario, {}).get(TARGET_CONTENDER)
        if not entry or "details" not in entry:
            continue
        d = dict(entry["details"])
        d.setdefault("tree", d.get("nodes", 1) - 1)
        try:
            rows.append(f"- `{scenario}`: {note.format(**d)}.")
        except KeyError:
            continue
    if not rows:
        return []
    return [f"Record and repair scenarios of the `{TARGET_CONTENDER}` contender (medians of the runs' details):",
            ""] + rows + [""]


def target_lines(scenarios):
    """The targets table: each target, the run's value and whether it holds. Empty when the graph was not measured."""
    rows = []
    for scenario, reference, bound in TARGETS:
        entries = scenarios.get(scenario, {})
        if TARGET_CONTENDER not in entries or (reference is not None and reference not in entries):
            continue
        higher = SCENARIOS[scenario][1]
        value = entries[TARGET_CONTENDER]["median"]
        if reference is None:
            target = f"{'at least' if higher else 'at most'} {fmt(bound)} {entries[TARGET_CONTENDER]['unit']}"
            shown = fmt(value)
        else:
            ref = entries[reference]["median"]
            if ref == 0:
                continue
            value = round(value / ref, 2)  # the check uses the ratio as the table shows it
            target = f"{'at least' if higher else 'at most'} {bound:g}× `{reference}`"
            shown = f"{value:.2f}×"
        holds = value >= bound if higher else value <= bound
        rows.append(f"| `{scenario}` | {target} | {shown} | {'yes' if holds else 'no'} |")
    if not rows:
        return []
    return [f"Targets of the `{TARGET_CONTENDER}` contender (medians of this run):", "",
            "| scenario | target | this run | holds |", "|---|---|---:|---|"] + rows + [""]


def chart(result, path):
    """Draws one bar panel per scenario (median, with min-max whiskers) with gnuplot. Returns False without gnuplot."""
    if not shutil.which("gnuplot"):
        sys.stderr.write("run_benchmarks: gnuplot not found; no chart\n")
        return False
    scenarios = result["scenarios"]
    names = [s for s in SCENARIOS if s in scenarios]
    others = iter(OTHER_COLORS)
    colors = {}
    for c in ordered({c for e in scenarios.values() for c in e}):
        colors[c] = COLORS.get(c) or next(others, 0x333333)
    cols = 5
    rows = (len(names) + cols - 1) // cols
    with tempfile.TemporaryDirectory() as tmp:
        script = [
            f"set terminal pngcairo noenhanced size {cols * 380},{rows * 400 + 60} font 'sans,10'",
            f"set output '{path}'",
            f"set multiplot layout {rows},{cols} title \"peergraph microbenchmarks ({result['machine']['mode']}, "
            f"{result['machine']['date']})\" font ',13'",
            "set style fill solid 0.85 border rgb 'black'",
            "set boxwidth 0.7",
            "set grid ytics",
            "set offsets 0, 0, graph 0.08, 0",
            "set xtics rotate by -35 font ',9' nomirror",
            "set ytics nomirror",
            "unset key",
            "set bmargin 5",
        ]
        for s in names:
            entries = scenarios[s]
            data = os.path.join(tmp, s + ".dat")
            with open(data, "w", encoding="utf-8") as f:
                for i, c in enumerate(ordered(entries)):
                    e = entries[c]
                    f.write(f"{i} {c} {e['median']!r} {e['min']!r} {e['max']!r} {colors[c]} {compact(e['median'])}\n")
            unit, higher = SCENARIOS[s]
            n = len(entries)
            top = max(e["max"] for e in entries.values())
            script += [
                "set format y '%.1s%c'" if top >= 1000 else "set format y '%g'",
                f"set title \"{s}\\n{unit}, {'higher' if higher else 'lower'} is better\" font ',11'",
                f"set xrange [-0.6:{n - 0.4}]",
                "set yrange [0:*]",
                f"plot '{data}' using 1:3:6:xtic(2) with boxes lc rgb variable, "
                f"'' using 1:3:4:5 with yerrorbars lc rgb 'black' pt -1, "
                f"'' using 1:5:7 with labels offset 0,0.7 font ',8'",
            ]
        script.append("unset multiplot")
        script_path = os.path.join(tmp, "chart.gp")
        with open(script_path, "w", encoding="utf-8") as f:
            f.write("\n".join(script) + "\n")
        proc = subprocess.run(["gnuplot", script_path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              check=False)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            die("gnuplot failed")
    return True


def write_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def update_readme(readme, table):
    begin, end = "<!-- latest-results:begin -->", "<!-- latest-results:end -->"
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    if begin not in text or end not in text:
        die(f"{readme} has no {begin} ... {end} block")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    body = table.split("\n", 2)[2]  # without the title line
    write_atomically(readme, head + begin + "\n" + body.rstrip() + "\n\n" + end + tail)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--build-dir", help="the build directory with benchmarks/ built")
    parser.add_argument("--quick", action="store_true", help="smoke run: under a minute, same files and names")
    parser.add_argument("--out-dir", help="where to write latest.{json,md,png} (default: benchmarks/results)")
    parser.add_argument("--update-readme", action="store_true",
                        help="also copy the table into benchmarks/README.md")
    parser.add_argument("--render-only", action="store_true",
                        help="run nothing: redraw latest.md and latest.png from latest.json")
    parser.add_argument("--only", metavar="SCENARIO,...",
                        help="run only these scenarios (comma-separated names); the results hold only them")
    args = parser.parse_args()

    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = args.out_dir or os.path.join(here, "results")
    if args.render_only:
        with open(os.path.join(out_dir, "latest.json"), encoding="utf-8") as f:
            result = json.load(f)
        write_outputs(result, out_dir, here, args.update_readme)
        return
    if not args.build_dir:
        die("--build-dir is needed to run the benchmarks")
    bench = os.path.join(args.build_dir, "benchmarks", "peergraph_bench")
    bench_allocs = os.path.join(args.build_dir, "benchmarks", "peergraph_bench_allocs")
    for program in (bench, bench_allocs):
        if not os.access(program, os.X_OK):
            die(f"{program} is not built")
    mode_name = "quick" if args.quick else "full"
    mode = MODES[mode_name]

    runner = Runner(bench, bench_allocs)
    supports = {c: set(m) for c, m in runner.run([bench, "--list"])["contenders"].items()}
    method = syscall_counter()
    machine = machine_info(runner, mode_name, method)
    sys.stderr.write(f"run_benchmarks: {mode_name} run of {', '.join(ordered(supports))} on {machine['cpu_model']}\n")

    only = None
    if args.only:
        only = set(args.only.split(","))
        unknown = only - set(SCENARIOS)
        if unknown:
            die(f"unknown scenario: {', '.join(sorted(unknown))}")
    samples, details = run_all(runner, supports, mode, method, only)
    machine["wall_seconds"] = round(runner.elapsed(), 1)
    result = {"machine": machine, "scenarios": summarize(samples, details)}

    os.makedirs(out_dir, exist_ok=True)
    write_atomically(os.path.join(out_dir, "latest.json"), json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    write_outputs(result, out_dir, here, args.update_readme)
    sys.stderr.write(f"run_benchmarks: done in {runner.elapsed():.1f} s; wrote {out_dir}/latest.{{json,md,png}}\n")


def write_outputs(result, out_dir, here, readme):
    settings = "./run bench --quick" if result["machine"].get("mode") == "quick" else "./run bench"
    table = markdown(result, settings)
    write_atomically(os.path.join(out_dir, "latest.md"), table)
    png = os.path.join(out_dir, "latest.png")
    if chart(result, png + ".tmp.png"):
        os.replace(png + ".tmp.png", png)
    if readme:
        update_readme(os.path.join(here, "README.md"), table)
    sys.stdout.write(table)


if __name__ == "__main__":
    main()
