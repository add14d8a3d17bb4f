"""Sections of the GPU check's results.md, from the stage logs (benchmarks/gpu_check.sh):

    summarize.py failures LOGS   failing tests by name, from the streamed pytest -v logs of every shard (so a shard
                                 cut off still names what it ran), GoogleTest's and the examples' logs
    summarize.py driver LOGS     the kernel driver's and compute-sanitizer's verdicts
    summarize.py benchmarks LOGS the benchmark tables
"""
import glob
import os
import re
import sys


def failures(logs):
    lines = ["## Failing tests", ""]
    names = []
    shard_logs = sorted(glob.glob(os.path.join(logs, "pytest*.log")))
    for path in shard_logs:
        shard = os.path.basename(path)[:-len(".log")]
        outcome = _pytest_outcomes(path)
        # A module that fails to import stops the whole shard ("Interrupted: 1 error during collection"): no test runs.
        for module, message in outcome["collection_errors"].items():
            lines.append(f"{shard}: COLLECTION ERROR in {module}: no test of this shard ran")
            names.append(f"- pytest {module} (collection error): {message[:160]}")
        if outcome["collection_errors"]:
            continue
        if outcome["collected"] is not None and not outcome["results"]:  # the dry run: the selection only
            lines.append(f"{shard}: {outcome['collected']} CUDA tests selected (dry run)")
            continue
        counts = {k: sum(v == k for v in outcome["results"].values()) for k in ("PASSED", "FAILED", "ERROR", "SKIPPED")}
        line = f"{shard}: {counts['PASSED']} passed, {counts['FAILED']} failed, {counts['ERROR']} errors, " \
               f"{counts['SKIPPED']} skipped"
        if not outcome["finished"]:
            line += f"; CUT OFF (no summary line) while in {outcome['running'] or 'collection'}"
        lines.append(line)
        for test, result in outcome["results"].items():
            if result in ("FAILED", "ERROR"):
                names.append(f"- pytest {test} ({result.lower()}): {outcome['messages'].get(test, '')[:160]}")
        if not outcome["finished"] and outcome["running"]:
            names.append(f"- pytest {outcome['running']} (cut off: the test running when the shard was stopped)")
    if not shard_logs:
        lines.append("pytest: no log")
    gtest = os.path.join(logs, "gtest.log")
    if os.path.exists(gtest):
        with open(gtest) as f:
            text = f.read()
        names += [f"- gtest {m}" for m in sorted(set(re.findall(r"\[  FAILED  \] (\S+)", text)))]
        listed = len(re.findall(r"^  \S+_CUDA", text, re.M))
        passed = re.search(r"\[  PASSED  \] (\d+) tests?", text)
        if listed:
            lines.append(f"GoogleTest: {listed} CUDA cases listed (dry run)")
        elif passed:
            lines.append(f"GoogleTest: {passed.group(1)} passed")
        elif "[==========]" not in text:
            lines.append("GoogleTest: CUT OFF or crashed (no summary line)")
    examples = os.path.join(logs, "examples.log")
    if os.path.exists(examples):
        with open(examples) as f:
            lines.append("C++ example and consumer: " + " / ".join(
                l.strip() for l in f if l.startswith("tiny_generated_net")) or "no output")
    lines += [""] + (names or ["None."])
    return "\n".join(lines)


def _pytest_outcomes(path):
    """What a pytest -v log says: each test's outcome as it was streamed, the messages of the short summary, the
    test that was running if the log stops before pytest's summary line, the count of a --collect-only run, and the
    modules that failed to import (each stops its shard)."""
    with open(path, errors="replace") as f:
        text = f.read()
    results, messages, running, collection_errors = {}, {}, None, {}
    for line in text.splitlines():
        # A test's id may hold spaces (a parameter's id): it ends where the outcome begins, or at the line's end.
        started = re.match(r"^(\S+::.*?)(?: (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b.*)?\s*$", line)
        if started and "::" in started.group(1) and not line.startswith(("FAILED ", "ERROR ")):
            test, result = started.groups()
            if result:
                results[test] = result
                running = None
            else:
                running = test
        summary = re.match(r"^(FAILED|ERROR) (\S+::.*?)(?: - (.*))?$", line)
        if summary:
            results.setdefault(summary.group(2), summary.group(1))
            messages[summary.group(2)] = summary.group(3) or ""
        module_error = re.match(r"^ERROR (\S+\.py)(?: - (.*))?$", line)
        if module_error:
            collection_errors[module_error.group(1)] = module_error.group(2) or ""
    collected = re.findall(r"(\d+)(?:/\d+)? tests? (?:collected|selected)", text)
    finished = re.search(r"^=+ .*\b(passed|failed|error|errors|skipped|deselected|no tests ran)\b.* in [\d.]+s", text,
                         re.M) is not None
    return {"results": results, "messages": messages, "running": running, "finished": finished,
            "collected": collected[-1] if collected else None, "collection_errors": collection_errors}


def driver(logs):
    lines = ["## Kernel driver (native) and compute-sanitizer", ""]
    paths = [os.path.join(logs, "driver.log")] + sorted(glob.glob(os.path.join(logs, "sanitizer-*.log")))
    if not any(os.path.exists(p) for p in paths):
        return "\n".join(lines + ["No log."])
    for path in paths:
        if not os.path.exists(path):
            continue
        lines.append(f"{os.path.basename(path)}:")
        with open(path, errors="replace") as f:
            kept = [line for line in f if line.startswith(("$ ", "MISMATCH", "ERROR", "========= "))
                    or "ERROR SUMMARY" in line or "RACECHECK SUMMARY" in line or re.match(r"\d+ cases", line)]
        if len(kept) > 60:  # a sanitizer's reports repeat per thread: the first ones and the summary say enough
            kept = kept[:50] + [f"... {len(kept) - 60} lines more in logs.tar.gz\n"] + kept[-10:]
        lines += ["    " + line.rstrip()[:300] for line in kept]
    return "\n".join(lines)


def benchmarks(logs):
    lines = ["## Benchmarks (quick mode; ratios to the first variant of each row, same run)", ""]
    for path in sorted(glob.glob(os.path.join(logs, "bench_*.md"))):
        lines += [f"### {os.path.basename(path)[len('bench_'):-len('.md')]}", ""]
        with open(path) as f:
            lines.append(f.read().strip())
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    kind, where = sys.argv[1], sys.argv[2]
    print({"failures": failures, "driver": driver, "benchmarks": benchmarks}[kind](where))
